//! `warrant verify TOKEN`: what a resource server would say of a token.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;

use super::with_storage;
use crate::configuration::Settings;
use crate::crypto::MasterKey;
use crate::domain::{KeyRecord, KeySetName, KeyState, jwk_set};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The access token (a compact JWT).
    #[arg(allow_hyphen_values = true)]
    pub token: String,
    /// The audience the resource server expects [default: the token's
    /// own aud].
    #[arg(long, value_name = "URI")]
    pub audience: Option<String>,
}

/// Prints the token and the verdict; returns whether the token is valid.
pub async fn exec(settings: Settings, args: VerifyArgs) -> anyhow::Result<bool> {
    use warrant_verifier::{KeySet, Validation, Verifier};

    let token = args.token.as_str();
    let mut out = std::io::stdout().lock();
    let (header, claims) = decode_for_display(token)?;
    writeln!(out, "header: {header}")?;
    writeln!(out, "claims: {claims}")?;

    let keys = with_storage(&settings, async |store| Ok(store.list_keys(true).await?)).await?;
    let jwks = jwk_set(keys.iter().filter_map(KeyRecord::published_jwk))?;
    let issuer = settings.issuer_for(settings.listen_addr()?);
    let audience = args
        .audience
        .or_else(|| match &claims["aud"] {
            serde_json::Value::String(aud) => Some(aud.clone()),
            serde_json::Value::Array(auds) => {
                auds.first().and_then(|a| a.as_str()).map(str::to_owned)
            }
            _ => None,
        })
        .unwrap_or_else(|| "-".to_owned());
    let mut builder = Verifier::builder(Validation::new(issuer.clone(), [audience.clone()]))
        .keys(KeySet::from_jwks(&jwks)?);
    // HS256 secrets, if the master key is at hand.
    let hs_keys: Vec<_> = keys
        .iter()
        .filter(|k| matches!(k.set, KeySetName::Hs256(_)) && k.state.is_published())
        .collect();
    if !hs_keys.is_empty() {
        match MasterKey::load(&settings.master_key_file, false) {
            Ok((master_key, _)) => {
                for key in hs_keys {
                    if let Some(sealed) = key.sealed_private_key.as_deref() {
                        builder = builder.hs256_secret(
                            key.kid.as_str(),
                            master_key.open(key.kid.as_bytes(), sealed)?,
                        );
                    }
                }
            }
            Err(e) => writeln!(out, "note: HS256 secrets not checked: {e}")?,
        }
    }
    let verifier = builder.build()?;

    let kid = header["kid"].as_str().unwrap_or_default();
    let key = keys.iter().find(|k| k.kid == kid);
    match verifier.verify(token).await {
        Ok(verified) => {
            let left = verified
                .expires_at()
                .saturating_sub(crate::clock::unix_now());
            let state = key.map_or("unknown", |k| k.state.as_str());
            writeln!(
                out,
                "valid: issuer {issuer}, audience {audience}, key {kid} ({state}), expires in {left} s"
            )?;
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "invalid: {e}")?;
            match key {
                None => writeln!(out, "  kid {kid:?} is not a key of this server")?,
                Some(k) if k.state == KeyState::Retired => {
                    writeln!(
                        out,
                        "  kid {kid} was retired: tokens it signed must have expired"
                    )?;
                }
                Some(_) => {}
            }
            writeln!(
                out,
                "  checked against issuer {issuer} and audience {audience}"
            )?;
            Ok(false)
        }
    }
}

/// The header and claims of a compact JWS, without checking anything.
fn decode_for_display(token: &str) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    use base64::Engine as _;
    let mut parts = token.trim().splitn(3, '.');
    let mut part = |name: &str| -> anyhow::Result<serde_json::Value> {
        let encoded = parts
            .next()
            .with_context(|| format!("not a JWT: no {name}"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .with_context(|| format!("not a JWT: the {name} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("not a JWT: the {name} is not JSON"))
    };
    Ok((part("header")?, part("claims")?))
}
