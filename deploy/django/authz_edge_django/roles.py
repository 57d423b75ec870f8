"""Which role test refused a signed-in user when no permission was asked: `is_superuser`,
`is_staff`, a `user_passes_test` function, a `UserPassesTestMixin` view.

Read from the code that refused (the frame that raised PermissionDenied, the decorator's
test, the view class), only on a denial, never on other responses.
"""

import inspect
import linecache
import re

_FLAG = re.compile(r"\b(is_superuser|is_staff)\b")
# Lines above a `raise PermissionDenied` that its condition may span.
_CONTEXT_LINES = 3


def _flag_in(text):
    m = _FLAG.search(text or "")
    return m.group(1) if m else None


def _source(func):
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def from_exception(exc):
    """`is_superuser` or `is_staff` when the condition just above the `raise` that refused
    tests it (`if not request.user.is_superuser: raise PermissionDenied`)."""
    tb = getattr(exc, "__traceback__", None)
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code, line = tb.tb_frame.f_code, tb.tb_lineno
    first = max(code.co_firstlineno, line - _CONTEXT_LINES)
    text = "".join(linecache.getline(code.co_filename, n) for n in range(first, line + 1))
    return _flag_in(text)


def _name(test_func):
    """A test function's name; a lambda is named by the flag it tests (Django admin's
    `staff_member_required` by its own name)."""
    name = getattr(test_func, "__name__", None) or type(test_func).__name__
    if name != "<lambda>":
        return name
    if getattr(test_func, "__module__", "") == "django.contrib.admin.views.decorators":
        return "staff_member_required"
    return _flag_in(_source(test_func)) or "<lambda>"


def _failing_decorator_test(func, user):
    """The first `user_passes_test` test along the view's decorators that `user` fails."""
    for _ in range(8):
        if func is None:
            return None
        names = getattr(getattr(func, "__code__", None), "co_freevars", ())
        cells = getattr(func, "__closure__", None) or ()
        free = dict(zip(names, cells))
        cell = free.get("test_func")
        if cell is not None:
            test = cell.cell_contents
            name = _name(test)
            try:
                passed = bool(test(user))
            except Exception:
                passed = False
            if not passed and name not in ("check_perms",):
                return name
        func = getattr(func, "__wrapped__", None)
    return None


def from_view(request):
    """The role test of the view that answered, for a refusal that raised nothing of ours: a
    `user_passes_test` decorator (its redirect to the login page) or a `UserPassesTestMixin`."""
    match = getattr(request, "resolver_match", None)
    func = getattr(match, "func", None)
    if func is None:
        return None
    view_class = getattr(func, "view_class", None)
    if view_class is not None:
        try:
            from django.contrib.auth.mixins import UserPassesTestMixin
        except ImportError:  # pragma: no cover
            return None
        if issubclass(view_class, UserPassesTestMixin):
            test = getattr(view_class, "test_func", None)
            flag = _flag_in(_source(test))
            return flag or f"{view_class.__name__}.test_func"
        return None
    return _failing_decorator_test(func, request.user)


def header(test, user):
    """`test=NAME; is_superuser=0; is_staff=1; is_active=1`: the test and the user's flags now."""
    flags = "; ".join(
        f"{flag}={int(bool(getattr(user, flag, False)))}"
        for flag in ("is_superuser", "is_staff", "is_active")
    )
    return f"test={test}; {flags}"
