from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from .forms import AcceptInvitationForm
from .services import InvitationError, invitation_accept, invitation_lookup


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True


@never_cache
@sensitive_post_parameters("password1", "password2")
def invitation_accept_view(request, token: str):
    try:
        invitation = invitation_lookup(token)
    except InvitationError as exc:
        return render(request, "accounts/invitation_invalid.html", {"message": str(exc)}, status=410)
    form = AcceptInvitationForm(request.POST or None, email=invitation.email,
                                initial={"username": invitation.email.split("@")[0]})
    if request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"])
        except InvitationError as exc:
            form.add_error(None, str(exc))
        else:
            # login() rotates the session key, so a session fixed before acceptance is useless.
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return render(request, "accounts/invitation_accept.html", {"form": form, "invitation": invitation})
