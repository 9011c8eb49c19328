//! [`Principal`]: who a valid token speaks for.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use std::borrow::Cow;

use crate::Algorithm;
use crate::jws::PermissionClaims;
use crate::validator::Checked;

/// The authenticated user of a connection, from a validated token.
///
/// The token's full claims are kept as their JSON text and parsed into a map only when
/// [`claims`](Self::claims) is first called: most connections never need more than the user
/// id, and validation stays within its time budget.
#[derive(Clone)]
pub struct Principal {
    user_id: String,
    expires_at: u64,
    algorithm: Algorithm,
    raw_claims: String,
    permissions: OnceLock<Vec<String>>,
    claims: OnceLock<Map<String, Value>>,
}

impl Principal {
    pub(crate) fn new(checked: Checked, algorithm: Algorithm, raw_claims: String) -> Self {
        Self {
            user_id: checked.user_id,
            expires_at: checked.expires_at,
            algorithm,
            raw_claims,
            permissions: OnceLock::new(),
            claims: OnceLock::new(),
        }
    }

    /// The user id: the token's `sub` (never empty).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The permissions: the strings of the `permissions` array claim together with the
    /// space-separated entries of the `scope` claim (OAuth 2.0, RFC 8693 section 4.2), sorted
    /// and without duplicates. Empty when the token has neither. (Validation checked both
    /// claims' types; the list itself is built on first use.)
    pub fn permissions(&self) -> &[String] {
        self.permissions.get_or_init(|| {
            // Validation parsed the same text and checked these claims' types: this cannot
            // fail; an empty list would be the safe answer anyway.
            let claims: PermissionClaims<'_> =
                serde_json::from_str(&self.raw_claims).unwrap_or_default();
            let mut out: Vec<String> = claims
                .permissions
                .unwrap_or_default()
                .into_iter()
                .map(Cow::into_owned)
                .collect();
            if let Some(scope) = claims.scope {
                out.extend(
                    scope
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            out.sort_unstable();
            out.dedup();
            out
        })
    }

    /// Whether [`permissions`](Self::permissions) contains `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions()
            .binary_search_by(|p| p.as_str().cmp(permission))
            .is_ok()
    }

    /// When the token expires: its `exp`, in unix seconds (rounded down). A server closes the
    /// connection (4401, `token_expired`) at that time unless the client refreshed its token.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// [`expires_at`](Self::expires_at) as a `SystemTime`.
    pub fn expires_at_time(&self) -> SystemTime {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.expires_at))
            .unwrap_or(UNIX_EPOCH)
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Every claim of the token, for services that want more than the above (parsed on
    /// first use; a claim other than the registered ones that appears twice keeps its last
    /// value, as RFC 7519 section 4 allows).
    pub fn claims(&self) -> &Map<String, Value> {
        self.claims.get_or_init(|| {
            // Validation parsed the same text as one JSON object: this cannot fail.
            serde_json::from_str(&self.raw_claims).unwrap_or_default()
        })
    }

    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// The `iss` claim, when it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.claim("iss").and_then(Value::as_str)
    }

    /// The claims as the JSON text the token carried.
    pub fn raw_claims(&self) -> &str {
        &self.raw_claims
    }

    /// Unwraps the claims.
    pub fn into_claims(self) -> Map<String, Value> {
        self.claims();
        self.claims.into_inner().unwrap_or_default()
    }
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        self.user_id == other.user_id
            && self.expires_at == other.expires_at
            && self.algorithm == other.algorithm
            && self.raw_claims == other.raw_claims
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("user_id", &self.user_id)
            .field("permissions", &self.permissions())
            .field("expires_at", &self.expires_at)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}
