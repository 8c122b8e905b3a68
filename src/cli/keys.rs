//! `warrant keys …`: the signing keys' lifecycle, by hand.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};

use super::with_storage;
use crate::clock::{rfc3339, unix_now};
use crate::configuration::Settings;
use crate::crypto::{Algorithm, MasterKey};
use crate::domain::{Audience, KeyId, KeyRecord, KeySetName, KeyState};
use crate::keys::{ExportedSecret, KeyManager, KeyPolicy, RotateMode, Rotation};
use crate::storage::Storage;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List keys with their state and timestamps.
    List {
        /// Include retired keys.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish a new next key for an algorithm (or an HS256 audience).
    Generate(KeySetArgs),
    /// Promote the next key to current when that is safe; the old current
    /// key becomes previous and a fresh next key is published.
    Rotate {
        #[command(flatten)]
        set: KeySetArgs,
        /// If promotion is not safe yet, schedule it: the server promotes the
        /// key as soon as it is.
        #[arg(long)]
        schedule: bool,
        /// Promote now even if the next key has not been published long
        /// enough: verifiers that cached the JWKS before it was published
        /// reject new tokens until they refetch.
        #[arg(long)]
        force_unsafe_promotion: bool,
    },
    /// Retire a next or previous key: it leaves the JWKS and its private
    /// half is destroyed.
    Retire {
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Retire a previous key even though tokens it signed may still be
        /// live (they will fail verification).
        #[arg(long)]
        force_while_tokens_live: bool,
    },
    /// Print the HS256 secrets of an audience, for its resource server, with
    /// the kids it must accept. A next secret can only be promoted after it
    /// was exported.
    ExportSecret {
        /// The audience (resource URI) whose secrets to print.
        #[arg(long, value_name = "URI")]
        audience: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every stored private key under a new master key (created at
    /// PATH if absent). Then replace the master key file with it; running
    /// servers pick it up when they meet a key sealed under it.
    Rewrap {
        #[arg(long, value_name = "PATH")]
        new_master_key_file: PathBuf,
    },
}

/// Which key set: an asymmetric algorithm, or an HS256 audience.
#[derive(Debug, Args)]
pub struct KeySetArgs {
    /// RS256, ES256, EdDSA, or HS256 (with --audience).
    #[arg(long, default_value = "RS256")]
    pub alg: String,
    /// The audience of an HS256 key set (implies --alg HS256).
    #[arg(long, value_name = "URI")]
    pub audience: Option<String>,
}

impl KeySetArgs {
    fn key_set(&self) -> anyhow::Result<KeySetName> {
        if let Some(audience) = &self.audience {
            let audience =
                Audience::parse(audience).map_err(|e| anyhow::anyhow!("--audience: {e}"))?;
            if !matches!(self.alg.as_str(), "HS256" | "RS256") {
                bail!("--audience selects an HS256 key set; --alg must be HS256");
            }
            return Ok(KeySetName::Hs256(audience));
        }
        match Algorithm::parse(&self.alg) {
            Some(Algorithm::HS256) => bail!("HS256 keys belong to an audience: add --audience URI"),
            Some(alg) => Ok(KeySetName::Asymmetric(alg)),
            None => bail!("--alg must be one of RS256, ES256, EdDSA, HS256"),
        }
    }
}

pub async fn exec(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    with_storage(&settings, async |store| {
        let out = &mut std::io::stdout().lock();
        match command {
            KeysCommand::List { all, json } => list(&store.list_keys(all).await?, json, out),
            KeysCommand::Generate(set) => {
                let keys = Keys::open(store, &settings).await?;
                generate(&keys, &set, out).await
            }
            KeysCommand::Rotate {
                set,
                schedule,
                force_unsafe_promotion,
            } => {
                let keys = Keys::open(store, &settings).await?;
                rotate(&keys, &set, schedule, force_unsafe_promotion, out).await
            }
            KeysCommand::Retire {
                kid,
                force_while_tokens_live,
            } => {
                let keys = Keys::open(store, &settings).await?;
                retire(&keys, &kid, force_while_tokens_live, out).await
            }
            KeysCommand::ExportSecret { audience, json } => {
                let keys = Keys::open(store, &settings).await?;
                export_secret(&keys, &audience, json, out).await
            }
            KeysCommand::Rewrap {
                new_master_key_file,
            } => {
                let keys = Keys::open(store, &settings).await?;
                rewrap(&keys, &new_master_key_file, &settings.master_key_file, out).await
            }
        }
    })
    .await
}

/// What every command but `list` works with: they seal or open keys.
struct Keys<'a> {
    store: &'a dyn Storage,
    master_key: MasterKey,
    policy: KeyPolicy,
    now: i64,
}

impl<'a> Keys<'a> {
    async fn open(store: &'a dyn Storage, settings: &Settings) -> anyhow::Result<Self> {
        // A new master key for a database that has keys would orphan them.
        let may_create = !store.has_any_key().await?;
        let (master_key, _) = MasterKey::load(&settings.master_key_file, may_create)?;
        Ok(Self {
            store,
            master_key,
            policy: KeyPolicy::from_settings(settings),
            now: unix_now(),
        })
    }

    fn manager(&self) -> KeyManager<'_> {
        KeyManager::new(self.store, &self.master_key, self.policy)
    }
}

fn list(keys: &[KeyRecord], json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        let list: Vec<serde_json::Value> = keys.iter().map(view).collect();
        writeln!(out, "{:#}", serde_json::Value::Array(list))?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<44} {:<9} {:<28} {:<21} {:<21} RETIRE_AFTER",
        "KID", "STATE", "SET", "PUBLISHED", "ACTIVATED"
    )?;
    let or_dash = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), rfc3339);
    for k in keys {
        writeln!(
            out,
            "{:<44} {:<9} {:<28} {:<21} {:<21} {}",
            k.kid.as_str(),
            k.state.as_str(),
            k.set.to_string(),
            rfc3339(k.published_at),
            or_dash(k.activated_at),
            or_dash(k.retire_after)
        )?;
    }
    Ok(())
}

/// What `keys list --json` prints of a key: everything but its material.
fn view(k: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "kid": k.kid.as_str(),
        "key_set": k.set.to_string(),
        "alg": k.alg.as_str(),
        "state": k.state.as_str(),
        "created_at": rfc3339(k.created_at),
        "published_at": rfc3339(k.published_at),
        "activated_at": k.activated_at.map(rfc3339),
        "retire_after": k.retire_after.map(rfc3339),
        "promote_at": k.promote_at.map(rfc3339),
        "exported_at": k.exported_at.map(rfc3339),
    })
}

async fn generate(keys: &Keys<'_>, set: &KeySetArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let set = set.key_set()?;
    let record = keys.manager().generate(&set, keys.now).await?;
    writeln!(out, "Published next key {} in {set}.", record.kid)?;
    match keys.policy.safe_at(&record) {
        Some(at) => writeln!(
            out,
            "It may sign from {} (`warrant keys rotate`).",
            rfc3339(at)
        )?,
        None => writeln!(
            out,
            "Give it to the resource server with `warrant keys export-secret --audience ...`; \
             it may sign {} s after that.",
            keys.policy.publication_delay
        )?,
    }
    Ok(())
}

async fn rotate(
    keys: &Keys<'_>,
    set: &KeySetArgs,
    schedule: bool,
    force_unsafe_promotion: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let set = set.key_set()?;
    let mode = match (force_unsafe_promotion, schedule) {
        (true, true) => bail!("--schedule and --force-unsafe-promotion exclude each other"),
        (true, false) => RotateMode::Force,
        (false, true) => RotateMode::Schedule,
        (false, false) => RotateMode::IfSafe,
    };
    let (now, policy) = (keys.now, keys.policy);
    let when = |at: Option<i64>| match at {
        Some(at) => format!("from {} (in {} s)", rfc3339(at), (at - now).max(0)),
        None => "once its secret has been exported and then published long enough".to_owned(),
    };
    match keys.manager().rotate(&set, mode, now).await? {
        Rotation::Promoted {
            current,
            previous,
            next,
        } => {
            if mode == RotateMode::Force {
                writeln!(
                    out,
                    "warning: forced promotion; verifiers holding a JWKS older than {} s may reject new tokens until they refetch",
                    policy.publication_delay
                )?;
            }
            writeln!(out, "Rotated {set}: {current} now signs.")?;
            if let Some(previous) = previous {
                writeln!(
                    out,
                    "  previous: {previous} (published until {})",
                    rfc3339(now + policy.retire_delay)
                )?;
            }
            writeln!(out, "  next:     {next} (published now)")?;
        }
        Rotation::NotYetSafe { next, safe_at } => bail!(
            "not rotating {set}: next key {next} may sign only {}; \
             --schedule to have the server promote it then, or --force-unsafe-promotion",
            when(safe_at)
        ),
        Rotation::Scheduled { next, at } => {
            writeln!(
                out,
                "Scheduled: a running server promotes {next} in {set} at {}.",
                rfc3339(at)
            )?;
        }
        Rotation::PublishedNext { next, safe_at } => {
            writeln!(
                out,
                "{set} had no next key: published {next}; it may sign {}.",
                when(safe_at)
            )?;
        }
    }
    Ok(())
}

async fn retire(
    keys: &Keys<'_>,
    kid: &str,
    force_while_tokens_live: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let kid = KeyId::parse(kid).map_err(|e| anyhow::anyhow!("{kid:?} is not a kid: {e}"))?;
    keys.manager()
        .retire(&kid, force_while_tokens_live, keys.now)
        .await?;
    writeln!(
        out,
        "Retired {kid}: removed from the JWKS, private key destroyed."
    )?;
    Ok(())
}

async fn export_secret(
    keys: &Keys<'_>,
    audience: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let audience = Audience::parse(audience).map_err(|e| anyhow::anyhow!("--audience: {e}"))?;
    let secrets = keys.manager().export_secrets(&audience, keys.now).await?;
    if json {
        let list: Vec<_> = secrets.iter().map(secret_view).collect();
        writeln!(
            out,
            "{:#}",
            serde_json::json!({ "audience": audience.as_str(), "keys": list })
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "HS256 secrets for {audience} (base64url); the resource server must accept every kid below:"
    )?;
    for s in &secrets {
        let note = if s.state == KeyState::Next {
            "  (next: will sign after rotation)"
        } else {
            ""
        };
        writeln!(
            out,
            "  kid {} {:<8} {}{note}",
            s.kid,
            s.state.as_str(),
            s.secret_b64url
        )?;
    }
    Ok(())
}

fn secret_view(s: &ExportedSecret) -> serde_json::Value {
    serde_json::json!({
        "kid": s.kid.as_str(),
        "state": s.state.as_str(),
        "alg": "HS256",
        "secret": s.secret_b64url,
    })
}

async fn rewrap(
    keys: &Keys<'_>,
    new_master_key_file: &Path,
    master_key_file: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (new_key, created) = MasterKey::load_file(new_master_key_file, true)?;
    if new_key.id() == keys.master_key.id() {
        bail!("the new master key is the one already in use");
    }
    let count = keys.manager().rewrap(&new_key).await?;
    writeln!(
        out,
        "Re-sealed {count} keys under master key {} ({}{}).",
        new_key.id(),
        new_master_key_file.display(),
        if created { ", created" } else { "" }
    )?;
    writeln!(
        out,
        "Now replace {} with it; servers load it when they next open a key, or at restart.",
        master_key_file.display()
    )?;
    Ok(())
}
