// Bundles frontend/src/*.js (+ imported CSS) into static/dist/. No CDN: every library the
// pages use comes from node_modules through this build.
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";

const entryPoints = readdirSync("frontend/src")
  .filter((f) => f.endsWith(".js") && !f.startsWith("_"))
  .map((f) => `frontend/src/${f}`);

const options = {
  entryPoints,
  bundle: true,
  outdir: "static/dist",
  format: "iife",
  target: ["chrome110", "firefox115", "safari16"],
  sourcemap: true,
  minify: !process.argv.includes("--watch"),
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".wasm": "file" },
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
