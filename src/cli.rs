//! The command line: `warrant serve`, `warrant client …`. Doc comments here
//! are the `--help` text.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret as _;

use crate::clock::{rfc3339, unix_now};
use crate::configuration::Settings;
use crate::credentials::{generate_secret, hash_secret};
use crate::crypto::{Algorithm, MasterKey};
use crate::crypto::{b64url, random_bytes};
use crate::domain::{Audience, Client, ClientId, GrantType, ScopeSet};
use crate::keys::{KeyManager, KeyPolicy, KeySet, RotateMode, Rotation};
use crate::startup::{Application, connect_storage, open_storage};
use crate::storage::{KeyState, Storage};

/// Warrant: an OAuth 2.0 client-credentials token authority.
///
/// Settings come from built-in defaults, then the --config file, then
/// WARRANT_* environment variables (see README.md).
#[derive(Debug, Parser)]
#[command(name = "warrant", version)]
pub struct Cli {
    /// TOML settings file.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token server (creates the database, master key and first
    /// signing key on first start).
    Serve,
    /// Apply pending database migrations and exit (for operators who run
    /// them separately, with auto_migrate = false on the servers).
    Migrate,
    /// Decode a token and verify it against this server's keys (as a
    /// resource server would, with the warrant-verifier crate), saying why it
    /// is rejected if it is. Exits 0 when valid, 1 when not.
    Verify {
        /// The access token (a compact JWT).
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// The audience the resource server expects [default: the token's
        /// own aud].
        #[arg(long, value_name = "URI")]
        audience: Option<String>,
    },
    /// Manage clients: who may obtain tokens, for which scopes and audiences.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys: list, generate, rotate, retire, export HS256
    /// secrets, re-seal under a new master key.
    ///
    /// Keys move next -> current -> previous -> retired. A next key is
    /// published in the JWKS before it may sign (jwks_max_age_secs +
    /// keys.publication_margin_secs), so no verifier meets an unknown kid; a
    /// previous key stays published until its tokens have expired.
    #[command(subcommand)]
    Keys(KeysCommand),
}

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
    fn key_set(&self) -> anyhow::Result<KeySet> {
        if let Some(audience) = &self.audience {
            let audience =
                Audience::parse(audience).map_err(|e| anyhow::anyhow!("--audience: {e}"))?;
            if !matches!(self.alg.as_str(), "HS256" | "RS256") {
                bail!("--audience selects an HS256 key set; --alg must be HS256");
            }
            return Ok(KeySet::Hs256(audience));
        }
        match Algorithm::parse(&self.alg) {
            Some(Algorithm::HS256) => bail!("HS256 keys belong to an audience: add --audience URI"),
            Some(alg) => Ok(KeySet::Asymmetric(alg)),
            None => bail!("--alg must be one of RS256, ES256, EdDSA, HS256"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its secret (shown once, stored hashed).
    Create(CreateArgs),
    /// List clients.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        // Generated ids and kids are base64url: they may start with '-'.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop issuing tokens to a client (its existing tokens stay valid
    /// until they expire).
    Disable {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Issue tokens to a disabled client again.
    Enable {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Delete a client for good.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Required: confirms the deletion, which cannot be undone.
        #[arg(long)]
        confirm_delete: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name for people; not used in tokens.
    #[arg(long)]
    pub name: String,
    /// Space-separated scopes the client may request, e.g. "orders:read orders:write".
    #[arg(long)]
    pub scope: String,
    /// An audience (resource URI) the client may request tokens for; repeat
    /// for several. The first is the default when a request names none.
    #[arg(long = "audience", value_name = "URI", required = true)]
    pub audiences: Vec<String>,
    /// Token lifetime in seconds [default: the token.default_ttl_secs setting].
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u32>,
    /// Grants the client may use, comma-separated; "" creates a client that
    /// cannot obtain tokens yet.
    #[arg(long, default_value = "client_credentials", value_name = "LIST")]
    pub grant_types: String,
    /// At most this many tokens a minute from each server (429 beyond).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub quota_per_minute: Option<u32>,
    /// Signing algorithm of the client's tokens: RS256, ES256 or EdDSA
    /// (audiences with HS256 keys get HS256 tokens whatever this says).
    #[arg(long, default_value = "RS256")]
    pub alg: String,
    /// Print JSON (with the secret) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn serve_command(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    application.run_until_stopped().await?;
    Ok(())
}

/// Runs `work` on the database the settings name (migrated unless
/// `auto_migrate` is off), then closes it, whatever `work` returned: SQLite
/// then leaves one file, without -wal and -shm.
async fn with_storage<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(&dyn Storage) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = open_storage(settings).await?;
    let result = work(store.as_ref()).await;
    store.close().await;
    result
}

pub async fn migrate_command(settings: Settings) -> anyhow::Result<()> {
    let store = connect_storage(&settings).await?;
    let result = store.migrate().await;
    store.close().await;
    result.context("cannot migrate the database")?;
    println!("The database schema is up to date.");
    Ok(())
}

pub async fn client_command(settings: Settings, command: ClientCommand) -> anyhow::Result<()> {
    with_storage(&settings, async |store| {
        run_client_command(store, &settings, command).await
    })
    .await
}

async fn run_client_command(
    store: &dyn Storage,
    settings: &Settings,
    command: ClientCommand,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        ClientCommand::Create(args) => {
            let json = args.json;
            let (client, secret) = new_client(settings, args)?;
            store.insert_client(&client).await?;
            if json {
                let mut value = client.to_json();
                value["client_secret"] = secret.expose_secret().into();
                writeln!(out, "{value:#}")?;
            } else {
                writeln!(out, "Created client {:?}", client.name)?;
                writeln!(out, "  client_id:     {}", client.id)?;
                writeln!(out, "  client_secret: {}", secret.expose_secret())?;
                writeln!(
                    out,
                    "The secret is shown only now; Warrant keeps just its hash."
                )?;
            }
        }
        ClientCommand::List { json } => {
            let clients: Vec<Client> = store
                .list_clients()
                .await?
                .into_iter()
                .collect::<Result<_, _>>()?;
            if json {
                let list: Vec<_> = clients.iter().map(Client::to_json).collect();
                writeln!(out, "{:#}", serde_json::Value::Array(list))?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<8} {:>6}  {:<20} {:<30} AUDIENCES",
                    "CLIENT_ID", "ENABLED", "TTL", "NAME", "SCOPE"
                )?;
                for c in &clients {
                    let audiences: Vec<&str> = c.audiences.iter().map(Audience::as_str).collect();
                    writeln!(
                        out,
                        "{:<24} {:<8} {:>6}  {:<20} {:<30} {}",
                        c.id,
                        c.enabled,
                        c.token_ttl_secs,
                        c.name,
                        c.scopes.to_string(),
                        audiences.join(" ")
                    )?;
                }
            }
        }
        ClientCommand::Show { client_id, json } => {
            let id = parse_id(&client_id)?;
            let client = store.get_client(&id).await?.with_context(|| no_such(&id))?;
            let value = client.to_json();
            if json {
                writeln!(out, "{value:#}")?;
            } else if let Some(fields) = value.as_object() {
                for (key, value) in fields {
                    let shown = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    writeln!(out, "{key:<15} {shown}")?;
                }
            }
        }
        ClientCommand::Disable { client_id } => {
            let id = parse_id(&client_id)?;
            if !store.set_client_enabled(&id, false).await? {
                bail!(no_such(&id));
            }
            writeln!(
                out,
                "Disabled client {id}; its existing tokens stay valid until they expire."
            )?;
        }
        ClientCommand::Enable { client_id } => {
            let id = parse_id(&client_id)?;
            if !store.set_client_enabled(&id, true).await? {
                bail!(no_such(&id));
            }
            writeln!(out, "Enabled client {id}.")?;
        }
        ClientCommand::Delete {
            client_id,
            confirm_delete,
        } => {
            let id = parse_id(&client_id)?;
            if !confirm_delete {
                bail!(
                    "refusing to delete client {id} without --confirm-delete (it cannot be undone; \
                     `warrant client disable` is reversible)"
                );
            }
            if !store.delete_client(&id).await? {
                bail!(no_such(&id));
            }
            writeln!(
                out,
                "Deleted client {id}; tokens it already holds stay valid until they expire."
            )?;
        }
    }
    Ok(())
}

fn new_client(
    settings: &Settings,
    args: CreateArgs,
) -> anyhow::Result<(Client, secrecy::SecretString)> {
    let name = args.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        bail!("--name must be 1 to 200 printable characters");
    }
    let scopes = ScopeSet::parse(&args.scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let mut audiences: Vec<Audience> = Vec::new();
    for raw in &args.audiences {
        let audience =
            Audience::parse(raw).map_err(|e| anyhow::anyhow!("--audience {raw}: {e}"))?;
        if !audiences.contains(&audience) {
            audiences.push(audience);
        }
    }
    let max_ttl = settings.token.max_ttl_secs;
    let ttl = args.ttl.unwrap_or(settings.token.default_ttl_secs);
    if ttl == 0 || ttl > max_ttl {
        bail!("--ttl must be between 1 and {max_ttl} seconds (the token.max_ttl_secs setting)");
    }
    let grant_types = GrantType::parse_list(&args.grant_types)
        .map_err(|e| anyhow::anyhow!("--grant-types: {e}"))?;
    let signing_alg = Algorithm::parse(&args.alg)
        .filter(|alg| !alg.is_symmetric())
        .ok_or_else(|| anyhow::anyhow!("--alg must be RS256, ES256 or EdDSA"))?;

    let secret = generate_secret()?;
    let now = crate::clock::unix_now();
    let client = Client {
        id: ClientId::parse(&b64url(&random_bytes::<16>()?))
            .map_err(|e| anyhow::anyhow!("generated client_id: {e}"))?,
        name,
        secret_hash: hash_secret(&secret)?,
        scopes,
        audiences,
        grant_types,
        signing_alg,
        token_ttl_secs: ttl,
        quota_per_minute: args.quota_per_minute,
        enabled: true,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    Ok((client, secret))
}

fn parse_id(raw: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(raw).map_err(|e| anyhow::anyhow!("{raw:?} is not a client id: {e}"))
}

fn no_such(id: &ClientId) -> String {
    format!("no client with id {id}")
}

pub async fn keys_command(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    with_storage(&settings, async |store| {
        run_keys_command(store, &settings, command).await
    })
    .await
}

async fn run_keys_command(
    store: &dyn Storage,
    settings: &Settings,
    command: KeysCommand,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let KeysCommand::List { all, json } = command {
        let keys = store.list_keys(all).await?;
        if json {
            let list: Vec<serde_json::Value> = keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "kid": k.kid,
                        "key_set": k.key_set,
                        "alg": k.alg,
                        "state": k.state.as_str(),
                        "created_at": rfc3339(k.created_at),
                        "published_at": rfc3339(k.published_at),
                        "activated_at": k.activated_at.map(rfc3339),
                        "retire_after": k.retire_after.map(rfc3339),
                        "promote_at": k.promote_at.map(rfc3339),
                        "exported_at": k.exported_at.map(rfc3339),
                    })
                })
                .collect();
            writeln!(out, "{:#}", serde_json::Value::Array(list))?;
        } else {
            writeln!(
                out,
                "{:<44} {:<9} {:<28} {:<21} {:<21} RETIRE_AFTER",
                "KID", "STATE", "SET", "PUBLISHED", "ACTIVATED"
            )?;
            for k in &keys {
                let or_dash = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), rfc3339);
                writeln!(
                    out,
                    "{:<44} {:<9} {:<28} {:<21} {:<21} {}",
                    k.kid,
                    k.state.as_str(),
                    k.key_set,
                    rfc3339(k.published_at),
                    or_dash(k.activated_at),
                    or_dash(k.retire_after)
                )?;
            }
        }
        return Ok(());
    }

    // Every other command seals or opens keys: it needs the master key, and
    // must never create one (that would orphan the stored keys).
    let may_create = !store.has_any_key().await?;
    let (master_key, _) = MasterKey::load(&settings.master_key_file, may_create)?;
    let policy = KeyPolicy::from_settings(settings);
    let keys = KeyManager::new(store, &master_key, policy);
    let now = unix_now();
    match command {
        KeysCommand::List { .. } => {}
        KeysCommand::Generate(args) => {
            let set = args.key_set()?;
            let record = keys.generate(&set, now).await?;
            writeln!(out, "Published next key {} in {set}.", record.kid)?;
            match policy.safe_at(&record) {
                Some(at) => writeln!(
                    out,
                    "It may sign from {} (`warrant keys rotate`).",
                    rfc3339(at)
                )?,
                None => writeln!(
                    out,
                    "Give it to the resource server with `warrant keys export-secret --audience ...`; \
                     it may sign {} s after that.",
                    policy.publication_delay
                )?,
            }
        }
        KeysCommand::Rotate {
            set,
            schedule,
            force_unsafe_promotion,
        } => {
            let set = set.key_set()?;
            let mode = match (force_unsafe_promotion, schedule) {
                (true, true) => bail!("--schedule and --force-unsafe-promotion exclude each other"),
                (true, false) => RotateMode::Force,
                (false, true) => RotateMode::Schedule,
                (false, false) => RotateMode::IfSafe,
            };
            let when = |at: Option<i64>| match at {
                Some(at) => format!("from {} (in {} s)", rfc3339(at), (at - now).max(0)),
                None => {
                    "once its secret has been exported and then published long enough".to_owned()
                }
            };
            match keys.rotate(&set, mode, now).await? {
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
        }
        KeysCommand::Retire {
            kid,
            force_while_tokens_live,
        } => {
            keys.retire(&kid, force_while_tokens_live, now).await?;
            writeln!(
                out,
                "Retired {kid}: removed from the JWKS, private key destroyed."
            )?;
        }
        KeysCommand::ExportSecret { audience, json } => {
            let audience =
                Audience::parse(&audience).map_err(|e| anyhow::anyhow!("--audience: {e}"))?;
            let secrets = keys.export_secrets(&audience, now).await?;
            if json {
                let list: Vec<_> = secrets
                    .iter()
                    .map(|s| serde_json::json!({ "kid": s.kid, "state": s.state.as_str(), "alg": "HS256", "secret": s.secret_b64url }))
                    .collect();
                writeln!(
                    out,
                    "{:#}",
                    serde_json::json!({ "audience": audience.as_str(), "keys": list })
                )?;
            } else {
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
            }
        }
        KeysCommand::Rewrap {
            new_master_key_file,
        } => {
            let (new_key, created) = MasterKey::load_file(&new_master_key_file, true)?;
            if new_key.id() == master_key.id() {
                bail!("the new master key is the one already in use");
            }
            let count = keys.rewrap(&new_key).await?;
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
                settings.master_key_file.display()
            )?;
        }
    }
    Ok(())
}

pub async fn verify_command(
    settings: Settings,
    token: &str,
    audience: Option<String>,
) -> anyhow::Result<bool> {
    use warrant_verifier::{KeySet, Validation, Verifier};

    let mut out = std::io::stdout().lock();
    let (header, claims) = decode_for_display(token)?;
    writeln!(out, "header: {header}")?;
    writeln!(out, "claims: {claims}")?;

    let keys = with_storage(&settings, async |store| Ok(store.list_keys(true).await?)).await?;
    let published: Vec<serde_json::Value> = keys
        .iter()
        .filter(|k| k.state != KeyState::Retired)
        .filter_map(|k| k.public_jwk.as_deref())
        .filter_map(|jwk| serde_json::from_str(jwk).ok())
        .collect();
    let jwks = serde_json::to_vec(&serde_json::json!({ "keys": published }))?;
    let issuer = settings.issuer_for(settings.listen_addr()?);
    let audience = audience
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
        .filter(|k| k.alg == "HS256" && k.state != KeyState::Retired)
        .collect();
    if !hs_keys.is_empty() {
        match MasterKey::load(&settings.master_key_file, false) {
            Ok((master_key, _)) => {
                for key in hs_keys {
                    if let Some(sealed) = key.sealed_private_key.as_deref() {
                        builder = builder.hs256_secret(
                            key.kid.clone(),
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
