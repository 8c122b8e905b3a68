use std::fmt;

use secrecy::SecretString;

use super::{Audience, ClientId, ParseError, ScopeSet};
use crate::crypto::Algorithm;

/// The grants a client may use. Warrant implements one; a client registered
/// with none can authenticate but obtains no tokens (`unauthorized_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "client_credentials" => Ok(Self::ClientCredentials),
            _ => Err(ParseError(
                "unknown grant type (supported: client_credentials)",
            )),
        }
    }

    /// A list separated by spaces or commas; empty means no grant.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, ParseError> {
        let mut grants = Vec::new();
        for part in s.split([' ', ',']).filter(|p| !p.is_empty()) {
            let grant = Self::parse(part)?;
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        Ok(grants)
    }
}

/// A registered client, as the token endpoint needs it.
#[derive(Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// argon2id PHC string of the secret.
    pub secret_hash: SecretString,
    pub scopes: ScopeSet,
    /// Allowed audiences; the first is the default.
    pub audiences: Vec<Audience>,
    pub grant_types: Vec<GrantType>,
    /// The asymmetric algorithm of this client's tokens (HS256 is chosen per
    /// audience, not per client).
    pub signing_alg: Algorithm,
    pub token_ttl_secs: u32,
    /// Tokens per minute this client may obtain from one server.
    pub quota_per_minute: Option<u32>,
    pub enabled: bool,
    /// Changes on every update of the row.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Client {
    pub fn default_audience(&self) -> Option<&Audience> {
        self.audiences.first()
    }

    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .field("enabled", &self.enabled)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Client {
    /// A client for unit tests: id `c1`, scope `read`, audience `urn:api`,
    /// the client credentials grant, enabled, version 1; its secret hash
    /// matches nothing.
    pub fn example() -> Self {
        Client {
            id: ClientId::parse("c1").unwrap(),
            name: "test".into(),
            secret_hash: SecretString::from("unused"),
            scopes: ScopeSet::parse("read").unwrap(),
            audiences: vec![Audience::parse("urn:api").unwrap()],
            grant_types: vec![GrantType::ClientCredentials],
            signing_alg: Algorithm::RS256,
            token_ttl_secs: 60,
            quota_per_minute: None,
            enabled: true,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_lists_accept_commas_spaces_and_nothing() {
        assert_eq!(
            GrantType::parse_list("client_credentials").unwrap(),
            vec![GrantType::ClientCredentials]
        );
        assert_eq!(
            GrantType::parse_list("client_credentials, client_credentials").unwrap(),
            vec![GrantType::ClientCredentials]
        );
        assert!(GrantType::parse_list("").unwrap().is_empty());
        assert!(GrantType::parse_list("password").is_err());
    }
}
