//! What a client may be given: the rules of the client credentials grant
//! about scope (RFC 6749 §3.3) and audience (RFC 8707), apart from HTTP.

use std::borrow::Cow;

use super::{Audience, Client, GrantType, ScopeSet};

/// What a token will say: the scopes granted and the one audience (both
/// cheap to clone: they share the client's strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: ScopeSet,
    pub audience: Audience,
}

/// Why a client cannot have what it asked for. The text is safe to show it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("this client may not use the client_credentials grant")]
    UnauthorizedClient,
    #[error("{0}")]
    InvalidScope(Cow<'static, str>),
    #[error("{0}")]
    InvalidTarget(Cow<'static, str>),
}

impl Client {
    /// The grant for a client credentials request: `scope` absent means all
    /// the client's scopes, `resources` empty means its default audience;
    /// one resource per token.
    pub fn grant(&self, scope: Option<&str>, resources: &[String]) -> Result<Grant, GrantError> {
        if !self.may_use(GrantType::ClientCredentials) {
            return Err(GrantError::UnauthorizedClient);
        }
        Ok(Grant {
            scope: self.granted_scope(scope)?,
            audience: self.audience_for(resources)?,
        })
    }

    fn granted_scope(&self, requested: Option<&str>) -> Result<ScopeSet, GrantError> {
        let Some(requested) = requested else {
            return Ok(self.scopes.clone());
        };
        let requested =
            ScopeSet::parse(requested).map_err(|e| GrantError::InvalidScope(e.0.into()))?;
        if let Some(unknown) = requested.iter().find(|s| !self.scopes.contains(s)) {
            return Err(GrantError::InvalidScope(
                format!("scope {unknown} is not registered for this client").into(),
            ));
        }
        Ok(requested)
    }

    fn audience_for(&self, resources: &[String]) -> Result<Audience, GrantError> {
        let requested = match resources {
            [] => {
                return self
                    .default_audience()
                    .cloned()
                    .ok_or(GrantError::InvalidTarget(
                        "this client has no audience".into(),
                    ));
            }
            [one] => one,
            _ => {
                return Err(GrantError::InvalidTarget(
                    "one resource per token request".into(),
                ));
            }
        };
        let audience =
            Audience::parse(requested).map_err(|e| GrantError::InvalidTarget(e.0.into()))?;
        // The client's own copy: its string is shared, not copied.
        self.audiences
            .iter()
            .find(|a| **a == audience)
            .cloned()
            .ok_or(GrantError::InvalidTarget(
                "resource is not registered for this client".into(),
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client(scopes: &str, audiences: &[&str], grants: Vec<GrantType>) -> Client {
        Client {
            scopes: ScopeSet::parse(scopes).unwrap(),
            audiences: audiences
                .iter()
                .map(|a| Audience::parse(a).unwrap())
                .collect(),
            grant_types: grants,
            ..Client::example()
        }
    }

    fn orders() -> Client {
        client(
            "orders:read orders:write",
            &["https://orders.example", "https://billing.example"],
            vec![GrantType::ClientCredentials],
        )
    }

    #[test]
    fn no_scope_and_no_resource_grant_everything_for_the_default_audience() {
        let grant = orders().grant(None, &[]).unwrap();
        assert_eq!(grant.scope.to_string(), "orders:read orders:write");
        assert_eq!(grant.audience.as_str(), "https://orders.example");
    }

    #[test]
    fn a_requested_subset_and_a_registered_resource_are_granted_as_asked() {
        let grant = orders()
            .grant(Some("orders:write"), &["https://billing.example".into()])
            .unwrap();
        assert_eq!(grant.scope.to_string(), "orders:write");
        assert_eq!(grant.audience.as_str(), "https://billing.example");
    }

    #[test]
    fn a_client_without_the_grant_type_is_unauthorized_whatever_it_asks() {
        let c = client("a", &["urn:x"], vec![]);
        assert_eq!(c.grant(None, &[]), Err(GrantError::UnauthorizedClient));
        assert_eq!(
            c.grant(Some("unknown"), &["bad".into()]),
            Err(GrantError::UnauthorizedClient)
        );
    }

    #[test]
    fn scopes_outside_the_registration_or_the_syntax_are_invalid_scope() {
        for scope in ["orders:delete", "orders:read  orders:write", "", "a\"b"] {
            assert!(
                matches!(
                    orders().grant(Some(scope), &[]),
                    Err(GrantError::InvalidScope(_))
                ),
                "{scope:?}"
            );
        }
    }

    #[test]
    fn unknown_malformed_or_several_resources_are_invalid_target() {
        let cases: [&[&str]; 4] = [
            &["https://other.example"],
            &["not-a-uri"],
            &["https://orders.example#frag"],
            &["https://orders.example", "https://billing.example"],
        ];
        for resources in cases {
            let resources: Vec<String> = resources.iter().map(|r| (*r).to_owned()).collect();
            assert!(
                matches!(
                    orders().grant(None, &resources),
                    Err(GrantError::InvalidTarget(_))
                ),
                "{resources:?}"
            );
        }
        let nowhere = client("a", &[], vec![GrantType::ClientCredentials]);
        assert!(matches!(
            nowhere.grant(None, &[]),
            Err(GrantError::InvalidTarget(_))
        ));
    }

    proptest! {
        /// Whatever is asked, what is granted is within the registration.
        #[test]
        fn a_grant_never_exceeds_the_registration(
            scope in proptest::option::of("[a-z:]{1,8}( [a-z:]{1,8}){0,3}"),
            resource in proptest::collection::vec("https://[a-z]{1,8}\\.example", 0..3),
        ) {
            let c = orders();
            if let Ok(grant) = c.grant(scope.as_deref(), &resource) {
                prop_assert!(grant.scope.is_subset_of(&c.scopes));
                prop_assert!(c.audiences.contains(&grant.audience));
            }
        }
    }
}
