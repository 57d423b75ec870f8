"""URL patterns of the test app: one per kind of denial the proxy must tell apart."""
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reports import views

api = [
    path("items/", views.ItemList.as_view()),
    path("me/", views.Me.as_view()),
]

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("whoami/", views.whoami),
    path("cookies/", views.cookies),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("accounts/profile/", views.profile),
    path("form/", views.form),
    path("reports/<int:pk>/", views.report_detail),
    path("reports/<int:pk>/export/", views.report_export),
    path("reports/<int:pk>/approve/", views.report_approve),
    path("reports/<int:pk>/edit/", views.report_edit),
    path("reports/<int:pk>/print/", views.report_print),
    path("staff/", views.staff_only),
    path("upload/", views.upload),
    path("api/", include(api)),
    path("big/<int:mib>/", views.big),
    path("tiny/", views.tiny),
    path("events/", views.events),
    path("page/", views.page),
]
