//! The causes a finding can name (CONTRACT.md, "Findings"), and what each needs as evidence.

/// The likely cause of a run of denials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    PermissionNotGranted,
    UnknownPermission,
    PermissionNotMigrated,
    SessionNotRecognised,
    CsrfFailures,
    SpikeAfterRelease,
    FilesystemPermission,
    StalePermissionCache,
    InactiveUser,
    NoObjectPermissionBackend,
    RoleRequired,
    LoginRedirectLoop,
}

impl Cause {
    pub const ALL: [Cause; 12] = [
        Cause::PermissionNotGranted,
        Cause::UnknownPermission,
        Cause::PermissionNotMigrated,
        Cause::SessionNotRecognised,
        Cause::CsrfFailures,
        Cause::SpikeAfterRelease,
        Cause::FilesystemPermission,
        Cause::StalePermissionCache,
        Cause::InactiveUser,
        Cause::NoObjectPermissionBackend,
        Cause::RoleRequired,
        Cause::LoginRedirectLoop,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Cause::PermissionNotGranted => "permission_not_granted",
            Cause::UnknownPermission => "unknown_permission",
            Cause::PermissionNotMigrated => "permission_not_migrated",
            Cause::SessionNotRecognised => "session_not_recognised",
            Cause::CsrfFailures => "csrf_failures",
            Cause::SpikeAfterRelease => "spike_after_release",
            Cause::FilesystemPermission => "filesystem_permission",
            Cause::StalePermissionCache => "stale_permission_cache",
            Cause::InactiveUser => "inactive_user",
            Cause::NoObjectPermissionBackend => "no_object_permission_backend",
            Cause::RoleRequired => "role_required",
            Cause::LoginRedirectLoop => "login_redirect_loop",
        }
    }
}

impl Cause {
    /// Whether Django's facts behind this cause say more of a permission than "not granted":
    /// while it has signals on a route and permission, `permission_not_granted` does not open
    /// there (the grant exists; a refusal answered a moment before the grant is stale).
    pub fn explains_not_granted(self) -> bool {
        matches!(
            self,
            Cause::StalePermissionCache
                | Cause::InactiveUser
                | Cause::NoObjectPermissionBackend
                | Cause::PermissionNotMigrated
        )
    }
}

/// How much evidence a candidate needs before its finding opens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Needs {
    /// Signals within the last minute.
    pub denials: u64,
    /// Distinct users (or sessions) within the last minute; 0: no requirement.
    pub actors: usize,
    /// Whether the rate must also stand above the candidate's own baseline (quasi-Poisson, as
    /// the spike detector): for causes that also occur at a normal, steady rate.
    pub above_baseline: bool,
}

impl Cause {
    /// The evidence rule of a cause; `companion` says whether Django's companion explained the
    /// signals (an edge-only guess needs more).
    pub fn needs(self, companion: bool) -> Needs {
        let n = |denials, actors, above_baseline| Needs {
            denials,
            actors,
            above_baseline,
        };
        match self {
            // Always a fault in the code, the deploy or the data, which Django's own facts
            // show: several denials, more than one user.
            Cause::PermissionNotMigrated
            | Cause::UnknownPermission
            | Cause::StalePermissionCache
            | Cause::InactiveUser
            | Cause::NoObjectPermissionBackend => n(5, 2, false),
            // Users without a permission or a role they lack is normal; a surge of them, for
            // several, is not (users who passed before). So is a signed-in user sent to the
            // login page now and then.
            Cause::PermissionNotGranted | Cause::RoleRequired | Cause::LoginRedirectLoop => {
                n(10, 3, true)
            }
            // Django said why it had no user, and the reason is a broken set-up.
            Cause::SessionNotRecognised if companion => n(5, 2, false),
            // The edge alone: stale cookies are common, so only a surge over several sessions.
            Cause::SessionNotRecognised => n(10, 3, true),
            // Expired forms fail now and then; a surge is a finding.
            Cause::CsrfFailures => n(10, 0, true),
            Cause::FilesystemPermission => n(3, 0, false),
            // Opened from the spike detector, not from signals.
            Cause::SpikeAfterRelease => n(u64::MAX, 0, false),
        }
    }
}
