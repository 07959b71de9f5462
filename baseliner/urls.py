from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "baseliner administration"
admin.site.site_title = "baseliner"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("baseliner.accounts.urls")),
    path("", include("baseliner.review.urls")),
    path("", include("baseliner.web.urls")),
    path("", include("baseliner.machines.urls")),
    path("", include("baseliner.attempts.urls")),
    path("", include("baseliner.surveys.urls")),
    path("", include("baseliner.scoring.urls")),
    path("", include("baseliner.workspace.urls")),
]

# A database or Redis outage raised outside a view (middleware, templates) gets the 503 page too.
handler500 = "baseliner.web.middleware.server_error"
