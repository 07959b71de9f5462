"""
The ``ec2`` provider: a fresh cloud VM per attempt (one H100: ``p5.4xlarge``), launched from a
:class:`~baseliner.machines.models.LaunchProfile` and terminated when the attempt ends.

One attempt, from launch to teardown::

    requesting capacity   import the lease's admin key as a key pair; a per-lease security
                          group if the profile asks for one; RunInstances in the profile's
                          zones in order (a capacity or quota error moves to the next zone;
                          when all are full, NoCloudCapacity puts the attempt back in the
                          queue, clock stopped, and the queue retries it later)
    booting               wait until the instance runs and has an address
    waiting for SSH       read the instance's serial console until cloud-init prints its SSH
                          host keys, pin one, then connect with it (a connection with another
                          key is refused: baseliner never trusts a first connection)
    (preparing)           create the expert's users over SSH; provisioning.prepare does the rest

Every instance is tagged ``baseliner:managed=true``, ``baseliner:deployment=<BASELINER_DEPLOYMENT_ID>``,
``baseliner:attempt``, ``baseliner:lease`` and ``baseliner:token``; teardown and the reaper act only
on instances carrying the first two (so two installs sharing an account never touch each other's
machines, and nothing of anyone else's is ever terminated).

Credentials come only from boto3's standard chain (environment, shared profile, instance role):
nothing here reads, stores or logs a key. ``EC2_ENDPOINT_URL`` points boto3 elsewhere (moto's
server in the tests). A Kubernetes or other cloud backend is a sibling module of this shape: see
"Writing a provider" in the README.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings

from baseliner.attempts import clock
from baseliner.audit.services import audit_record

from . import shared_host, ssh
from .base import CapacityUnavailable, Provider, ProvisionError

log = logging.getLogger(__name__)

MANAGED, DEPLOYMENT, ATTEMPT, LEASE, TOKEN = (
    "baseliner:managed", "baseliner:deployment", "baseliner:attempt", "baseliner:lease", "baseliner:token")
# Errors that mean "not here, not now": try the next zone, then wait in the queue.
CAPACITY_ERRORS = {"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
                   "InsufficientAddressCapacity", "InsufficientFreeAddressesInSubnet", "Unsupported"}
QUOTA_ERRORS = {"VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded"}
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]
HOST_KEYS_BEGIN, HOST_KEYS_END = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"
HOST_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")


class NoCloudCapacity(CapacityUnavailable):
    """Every configured zone refused for lack of capacity or quota: the attempt waits in the
    queue (clock stopped) and is tried again."""

    user_message = ("No H100 machine is free at the cloud provider right now. Your attempt is waiting in the queue "
                    "and baseliner keeps trying; your clock has not started.")


def launch_profile():
    from baseliner.machines.models import LaunchProfile

    profile = LaunchProfile.objects.filter(enabled=True).order_by("name").first()
    if profile is None:
        raise ProvisionError("the ec2 provider has no enabled launch profile (add one in the admin)",
                             user_message="baseliner has no cloud machine configured yet; staff have been told.")
    return profile


def ec2_client(region: str, *, attempts: int = 3):
    """A boto3 EC2 client; credentials from the standard AWS chain only."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, connect_timeout=10, read_timeout=60)
    return boto3.session.Session(region_name=region).client("ec2", endpoint_url=settings.EC2_ENDPOINT_URL or None,
                                                            config=config)


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)


def _tags(kind: str, tags: dict) -> list[dict]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()]}]


def ours(tags: list[dict] | dict) -> bool:
    """True only for resources this deployment of baseliner made (the reaper's guard)."""
    tags = tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags or []}
    return tags.get(MANAGED) == "true" and tags.get(DEPLOYMENT) == settings.BASELINER_DEPLOYMENT_ID


def ownership_filters() -> list[dict]:
    return [{"Name": f"tag:{MANAGED}", "Values": ["true"]},
            {"Name": f"tag:{DEPLOYMENT}", "Values": [settings.BASELINER_DEPLOYMENT_ID]}]


def user_data(*, admin_public_key: str, token: str) -> str:
    """cloud-init: let root in with the lease's admin key only, make fresh host keys and print
    them to the serial console (where baseliner reads the one it pins), install what the
    shared preparation needs. Holds no secret (the console and user data are readable by
    anyone with ec2:Describe* rights)."""
    return "\n".join([
        "#cloud-config",
        f"# baseliner lease {token}",
        "disable_root: false",
        "ssh_pwauth: false",
        "ssh_deletekeys: true",
        "ssh_genkeytypes: [ed25519, ecdsa]",
        "ssh:",
        "  emit_keys_to_console: true",
        "ssh_key_console_blacklist: []",
        "ssh_authorized_keys:",
        f"  - {admin_public_key.strip()}",
        "packages: [tmux, rsync, acl]",
        "",
    ])


def host_key_from_console(output: str) -> str | None:
    """The host key cloud-init printed between its markers on first boot, by preference
    ed25519; None until it has. Lines may carry a syslog prefix (``<14>Nov 23 12:00:01 ec2:``)."""
    block = output.partition(HOST_KEYS_BEGIN)[2]
    if HOST_KEYS_END not in block:
        return None
    keys = {}
    for line in block.partition(HOST_KEYS_END)[0].splitlines():
        words = line.split()
        for kind, blob in zip(words, words[1:]):
            if kind in HOST_KEY_PREFERENCE:
                try:
                    ssh.parse_host_key(f"{kind} {blob}")
                except Exception:  # noqa: BLE001 - a garbled line is skipped
                    break
                keys.setdefault(kind, f"{kind} {blob}")
                break
    return next((keys[t] for t in HOST_KEY_PREFERENCE if t in keys), None)


class Ec2Provider(Provider):
    name = "ec2"

    # --- provisioning --------------------------------------------------------------------
    def provision(self, *, lease):
        profile = launch_profile()
        state = shared_host.new_state()
        token, deployment = state["token"], settings.BASELINER_DEPLOYMENT_ID
        state.update(region=profile.region, profile=profile.name, instance_id="", security_group_id="",
                     key_name=f"baseliner-{deployment}-{token}", launched_at=None)
        expert_key, expert_pub = ssh.generate_key()
        admin_key, admin_pub = ssh.generate_key()
        lease.provider_state = state
        lease.set_credentials(json.dumps({"expert_key": expert_key, "admin_key": admin_key, "admin_user": "root"}))
        lease.username = f"bl{token}"
        lease.cost_per_hour = profile.price_per_hour
        tags = {**profile.tags, "Name": f"baseliner attempt {lease.attempt_id}", MANAGED: "true",
                DEPLOYMENT: deployment, ATTEMPT: lease.attempt_id, LEASE: lease.pk, TOKEN: token}
        yield {"progress": 3, "message": "Requesting capacity"}  # the names above are saved before anything exists

        ec2 = ec2_client(profile.region)
        ec2.import_key_pair(KeyName=state["key_name"], PublicKeyMaterial=admin_pub.encode(),
                            TagSpecifications=_tags("key-pair", tags))
        groups = profile.security_groups()
        if profile.ssh_ingress_cidr:
            state["security_group_id"] = self._create_security_group(ec2, profile, state, tags)
            groups.append(state["security_group_id"])
        instance = yield from self._launch(profile, state, tags, groups, admin_pub)
        state.update(instance_id=instance["InstanceId"], launched_at=clock.now().isoformat(),
                     zone=instance.get("Placement", {}).get("AvailabilityZone", ""))
        log.info("lease %s: launched %s (%s) in %s", lease.pk, instance["InstanceId"], profile.instance_type, state["zone"])
        yield {"progress": 15, "message": "Booting"}

        deadline = time.monotonic() + profile.boot_timeout_minutes * 60
        instance = self._wait_running(ec2, state["instance_id"], deadline)
        ip = instance.get("PublicIpAddress") if profile.use_public_ip else None
        state["instance_ip"] = ip or instance.get("PrivateIpAddress", "")
        lease.address, lease.port = state["instance_ip"], 22
        if settings.EC2_SSH_ENDPOINT_OVERRIDE:  # tests: a loopback sshd stands in for the instance
            host, _, port = settings.EC2_SSH_ENDPOINT_OVERRIDE.rpartition(":")
            lease.address, lease.port = host, int(port)
        yield {"progress": 25, "message": "Waiting for SSH"}

        lease.host_key = self._wait_host_key(ec2, state["instance_id"], deadline)
        lease.host_key_fingerprint = ssh.fingerprint(lease.host_key)
        yield {"progress": 35, "message": "Waiting for SSH"}
        client = self._wait_ssh(lease, deadline)
        try:
            yield {"progress": 40, "message": "Preparing"}
            state["uid"] = shared_host.create_users(client, state=state, expert_public_key=expert_pub, cuda=None)
        finally:
            client.close()
        yield {"progress": 45, "message": "Preparing"}

    def _create_security_group(self, ec2, profile, state, tags) -> str:
        if profile.subnets():
            vpc = ec2.describe_subnets(SubnetIds=profile.subnets()[:1])["Subnets"][0]["VpcId"]
        else:
            vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        group = ec2.create_security_group(GroupName=state["key_name"], VpcId=vpc, TagSpecifications=_tags("security-group", tags),
                                          Description="baseliner: SSH from the app only, for one attempt")["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            "IpRanges": [{"CidrIp": profile.ssh_ingress_cidr, "Description": "baseliner app"}]}])
        return group

    def _launch(self, profile, state, tags, groups, admin_pub):
        """RunInstances in each configured place in order; yields a progress event per refusal."""
        ec2 = ec2_client(profile.region, attempts=1)  # a full zone stays full: move on at once
        if profile.subnets():
            zone_of = {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=profile.subnets())["Subnets"]}
            places = [({"SubnetId": s}, zone_of.get(s, s)) for s in profile.subnets()]
        else:
            places = [({"Placement": {"AvailabilityZone": z}}, z) for z in profile.zones()] or [({}, profile.region)]
        refusals = []
        for i, (place, where) in enumerate(places):
            try:
                return ec2.run_instances(
                    ImageId=profile.ami_id, InstanceType=profile.instance_type, MinCount=1, MaxCount=1,
                    KeyName=state["key_name"], UserData=user_data(admin_public_key=admin_pub, token=state["token"]),
                    ClientToken=f"baseliner-{state['token']}-{i}", **place,
                    **({"SecurityGroupIds": groups} if groups else {}),
                    BlockDeviceMappings=[{"DeviceName": profile.root_device_name, "Ebs": {
                        "VolumeSize": profile.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}],
                    InstanceInitiatedShutdownBehavior="terminate", MetadataOptions={"HttpTokens": "required"},
                    TagSpecifications=_tags("instance", tags) + _tags("volume", tags),
                )["Instances"][0]
            except Exception as exc:  # botocore's ClientError, or a network error
                code = _error_code(exc)
                if code not in CAPACITY_ERRORS | QUOTA_ERRORS:
                    raise ProvisionError(f"RunInstances in {where} failed: {code}: {exc}") from exc
                refusals.append(f"{where}: {code}")
                log.warning("lease token %s: %s refused %s (%s)", state["token"], where, profile.instance_type, code)
                plain = (f"The lab's cloud quota is used up ({where})" if code in QUOTA_ERRORS
                         else f"The cloud has no free machine in {where} right now")
                more = f"; trying {places[i + 1][1]}" if i + 1 < len(places) else ""
                yield {"progress": 5, "message": f"{plain}{more}"}
        raise NoCloudCapacity(f"no {profile.instance_type} capacity: {'; '.join(refusals)}")

    def _wait_running(self, ec2, instance_id: str, deadline: float) -> dict:
        while True:
            # Filter by id: right after RunInstances, asking by InstanceIds may answer NotFound.
            found = instances(ec2, [{"Name": "instance-id", "Values": [instance_id]}])
            instance = found[0] if found else {}
            status = instance.get("State", {}).get("Name")
            if status == "running" and (instance.get("PublicIpAddress") or instance.get("PrivateIpAddress")):
                return instance
            if status in ("shutting-down", "terminated", "stopped", "stopping"):
                reason = instance.get("StateReason", {}).get("Message", "")
                raise ProvisionError(f"instance {instance_id} is {status} before it ran: {reason}")
            _sleep_until(deadline, f"instance {instance_id} did not start running in time (last state: {status})")

    def _wait_host_key(self, ec2, instance_id: str, deadline: float) -> str:
        while True:
            output = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""
            key = host_key_from_console(output)
            if key:
                return key
            _sleep_until(deadline, f"instance {instance_id} printed no SSH host key to its console in time")

    def _wait_ssh(self, lease, deadline: float):
        while True:
            try:
                return self.client(lease=lease, as_admin=True)
            except ssh.HostKeyMismatch as exc:
                raise ProvisionError(f"the SSH server at {lease.address}:{lease.port} is not the instance whose console "
                                     f"we read: {exc}", user_message=ssh.HostKeyMismatch.user_message) from exc
            except ssh.SSHError as exc:
                _sleep_until(deadline, f"SSH to {lease.address}:{lease.port} did not answer in time: {exc}")

    # --- health --------------------------------------------------------------------------
    def poll(self, *, lease) -> str | None:
        state = lease.provider_state or {}
        try:
            found = ec2_client(state["region"]).describe_instances(InstanceIds=[state["instance_id"]])["Reservations"]
            status = found[0]["Instances"][0]["State"]["Name"] if found else "gone"
        except Exception as exc:  # noqa: BLE001 - poll never raises
            return f"cannot ask EC2 about {state.get('instance_id')}: {_error_code(exc)}"
        if status != "running":
            return f"instance {state.get('instance_id')} is {status}"
        return super().poll(lease=lease)

    # --- teardown ------------------------------------------------------------------------
    def teardown(self, *, lease) -> None:
        """Terminate the instance and delete its key pair and security group. The expert's
        users are removed first when the machine answers (it does not matter on a VM about
        to vanish, but a test's stand-in machine is shared). "Already gone" is success."""
        state = dict(lease.provider_state or {})
        if not shared_host.TOKEN_RE.match(state.get("token", "")) or not state.get("region"):
            return
        if lease.host_key and state.get("uid") is not None:
            try:
                client = self.client(lease=lease, as_admin=True)
                try:
                    shared_host.remove_users(client, state=state)
                finally:
                    client.close()
            except (ssh.SSHError, ProvisionError, OSError) as exc:
                log.info("lease %s: could not clean up users before terminating (%s)", lease.pk, exc)
        ec2 = ec2_client(state["region"])
        alive = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
        found = instances(ec2, alive + ownership_filters() + [{"Name": f"tag:{TOKEN}", "Values": [state["token"]]}])
        if state.get("instance_id"):  # by id too, so an instance that lost its tags is refused loudly
            found += instances(ec2, alive + [{"Name": "instance-id", "Values": [state["instance_id"]]}])
        found = list({i["InstanceId"]: i for i in found}.values())
        if found:
            terminate(ec2, found)
            ec2.get_waiter("instance_terminated").wait(
                InstanceIds=[i["InstanceId"] for i in found],
                WaiterConfig={"Delay": max(1, int(settings.EC2_POLL_SECONDS)), "MaxAttempts": 120})
            if state.get("launched_at") and lease.cost_per_hour is not None:
                hours = Decimal((clock.now() - datetime.fromisoformat(state["launched_at"])).total_seconds()) / 3600
                lease.estimated_cost = (lease.cost_per_hour * hours).quantize(Decimal("0.01"))
        if state.get("security_group_id"):
            _ignore_gone(ec2.delete_security_group, GroupId=state["security_group_id"])
        _ignore_gone(ec2.delete_key_pair, KeyName=state["key_name"])
        state.update(instance_id="", security_group_id="", terminated=state.get("terminated", []) + [i["InstanceId"] for i in found])
        lease.provider_state = state
        lease.save(update_fields=["provider_state", "estimated_cost"])
        log.info("lease %s: terminated %s", lease.pk, ", ".join(i["InstanceId"] for i in found) or "nothing (none was running)")


def instances(ec2, filters: list[dict]) -> list[dict]:
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def terminate(ec2, described: list[dict]) -> None:
    """Terminate instances as EC2 described them, refusing all if any lacks this deployment's tags."""
    strangers = [i["InstanceId"] for i in described if not ours(i.get("Tags", []))]
    if strangers:
        raise ProvisionError(f"refusing to terminate instances without this deployment's tags: {strangers}")
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in described])


def ec2_reap(*, at: datetime | None = None) -> list[tuple[str, str]]:
    """Terminate this deployment's instances that no live lease accounts for: the lease is
    gone or over, the attempt ended more than ``EC2_REAPER_GRACE_MINUTES`` ago, or the instance
    is not the one its lease recorded and was launched more than the grace period ago (a crash
    between launching and saving). Only instances tagged by this deployment are ever looked at.
    Returns [(instance id, reason)]."""
    from baseliner.machines.models import LaunchProfile, Lease

    at = at or clock.now()
    grace = timedelta(minutes=settings.EC2_REAPER_GRACE_MINUTES)
    regions = set(LaunchProfile.objects.values_list("region", flat=True))
    regions |= {s.get("region") for s in Lease.objects.filter(provider="ec2", state__in=Lease.LIVE_STATES)
                .values_list("provider_state", flat=True) if s.get("region")}
    reaped = []
    for region in sorted(regions):
        ec2 = ec2_client(region)
        for instance in instances(ec2, ownership_filters() + [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]):
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            reason = ours(tags) and _orphan_reason(instance, tags, at, grace)
            if reason:
                log.warning("ec2 reaper: terminating %s in %s: %s", instance["InstanceId"], region, reason)
                terminate(ec2, [instance])
                audit_record(action="ec2.instance_reaped", target=f"ec2:{region}:{instance['InstanceId']}",
                             reason=reason, data={"tags": tags})
                reaped.append((instance["InstanceId"], reason))
    return reaped


def _orphan_reason(instance: dict, tags: dict, at: datetime, grace: timedelta) -> str | None:
    from baseliner.machines.models import Lease

    lease = Lease.objects.filter(pk=int(tags[LEASE]) if tags.get(LEASE, "").isdigit() else None, provider="ec2").select_related("attempt").first()
    if lease is None:
        return "its lease does not exist"
    if lease.state not in Lease.LIVE_STATES:
        return f"its lease is {lease.state}"
    ended = lease.attempt.ended_at
    if ended and at - ended > grace:
        return f"its attempt ended at {ended:%Y-%m-%d %H:%M} UTC, more than the grace period ago"
    if lease.provider_state.get("instance_id") != instance["InstanceId"] and at - instance["LaunchTime"] > grace:
        return "its lease does not know it (launched by an interrupted provisioning)"
    return None


def _ignore_gone(call, **kwargs) -> None:
    try:
        call(**kwargs)
    except Exception as exc:  # noqa: BLE001
        if not _error_code(exc).endswith(".NotFound"):
            raise


def _sleep_until(deadline: float, timeout_message: str) -> None:
    if time.monotonic() > deadline:
        raise ProvisionError(timeout_message)
    time.sleep(settings.EC2_POLL_SECONDS)
