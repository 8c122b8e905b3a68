//! `warrant client …`: who may obtain tokens, for which scopes and audiences.

use std::io::Write;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};

use super::with_storage;
use crate::clock::{rfc3339, unix_now};
use crate::configuration::Settings;
use crate::credentials::{generate_secret, hash_secret};
use crate::crypto::{Algorithm, b64url, random_bytes};
use crate::domain::{Audience, Client, ClientId, GrantType, NamePattern, ScopeSet};
use crate::storage::Storage;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its secret (shown once, stored hashed).
    Create(CreateArgs),
    /// List clients in client_id order, streamed page by page whatever
    /// their number.
    List(ListArgs),
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
pub struct ListArgs {
    /// Print at most N clients (1 to 10000); when more follow, stderr says
    /// which --after gives the next page.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT))]
    pub limit: Option<u32>,
    /// Start after this client id (the last one of the previous page).
    #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
    pub after: Option<String>,
    /// Only clients whose name contains PATTERN, ignoring ASCII case. A `*`
    /// stands for any characters and makes PATTERN match the whole name
    /// ("orders*": names starting with "orders"); every other character,
    /// `%` and `_` included, matches itself.
    #[arg(long, value_name = "PATTERN")]
    pub name: Option<String>,
    /// Print a JSON array (one client a line) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The largest page `--limit` asks for: one query, held in memory at once.
const MAX_LIMIT: i64 = 10_000;

/// Clients read at a time when listing without `--limit`.
const PAGE: usize = 1_000;

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

pub async fn exec(settings: Settings, command: ClientCommand) -> anyhow::Result<()> {
    with_storage(&settings, async |store| {
        let out = &mut std::io::stdout().lock();
        match command {
            ClientCommand::Create(args) => create(store, &settings, args, out).await,
            ClientCommand::List(args) => list(store, args, out).await,
            ClientCommand::Show { client_id, json } => show(store, &client_id, json, out).await,
            ClientCommand::Disable { client_id } => {
                let id = set_enabled(store, &client_id, false).await?;
                writeln!(
                    out,
                    "Disabled client {id}; its existing tokens stay valid until they expire."
                )?;
                Ok(())
            }
            ClientCommand::Enable { client_id } => {
                let id = set_enabled(store, &client_id, true).await?;
                writeln!(out, "Enabled client {id}.")?;
                Ok(())
            }
            ClientCommand::Delete {
                client_id,
                confirm_delete,
            } => delete(store, &client_id, confirm_delete, out).await,
        }
    })
    .await
}

/// What the CLI prints of a client: everything but the secret hash.
fn view(client: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": client.id.as_str(),
        "name": client.name,
        "scope": client.scopes.to_string(),
        "audiences": client.audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "signing_alg": client.signing_alg.as_str(),
        "token_ttl_secs": client.token_ttl_secs,
        "quota_per_minute": client.quota_per_minute,
        "enabled": client.enabled,
        "created_at": rfc3339(client.created_at),
        "updated_at": rfc3339(client.updated_at),
    })
}

async fn create(
    store: &dyn Storage,
    settings: &Settings,
    args: CreateArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let json = args.json;
    let (client, secret) = new_client(settings, args)?;
    store.insert_client(&client).await?;
    if json {
        let mut value = view(&client);
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
    Ok(())
}

async fn list(store: &dyn Storage, args: ListArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut after = args.after.as_deref().map(parse_id).transpose()?;
    let name = args
        .name
        .as_deref()
        .map(NamePattern::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    // Buffered, and flushed after each page: a million lines are not a
    // million writes, yet a reader sees every page as soon as it is read.
    let out = &mut std::io::BufWriter::new(out);
    let mut printer = ListPrinter::start(args.json, out)?;
    let mut left = args.limit.map(|limit| limit as usize);
    loop {
        // One more than asked for tells whether another page follows.
        let page = left.map_or(PAGE, |left| left.min(PAGE) + 1);
        let clients = store
            .list_clients_page(after.as_ref(), page, name.as_ref())
            .await?;
        let full = clients.len() == page;
        for client in clients {
            if left == Some(0) {
                break;
            }
            let client = client?;
            printer.print(&client, out)?;
            after = Some(client.id);
            left = left.map(|left| left - 1);
        }
        out.flush()?;
        if !full {
            break;
        }
        if left == Some(0) {
            if let Some(last) = &after {
                // stderr, so that stdout stays a table or valid JSON.
                writeln!(std::io::stderr(), "next page: --after={last}")?;
            }
            break;
        }
    }
    printer.finish(out)?;
    out.flush()?;
    Ok(())
}

/// Writes a listing one client at a time: a table, or a JSON array with one
/// client a line.
struct ListPrinter {
    json: bool,
    first: bool,
}

impl ListPrinter {
    fn start(json: bool, out: &mut impl Write) -> std::io::Result<Self> {
        if json {
            writeln!(out, "[")?;
        } else {
            writeln!(
                out,
                "{:<24} {:<8} {:>6}  {:<20} {:<30} AUDIENCES",
                "CLIENT_ID", "ENABLED", "TTL", "NAME", "SCOPE"
            )?;
        }
        Ok(Self { json, first: true })
    }

    fn print(&mut self, c: &Client, out: &mut impl Write) -> std::io::Result<()> {
        if self.json {
            let separator = if self.first { "" } else { ",\n" };
            write!(out, "{separator}{}", view(c))?;
        } else {
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
        self.first = false;
        Ok(())
    }

    fn finish(self, out: &mut impl Write) -> std::io::Result<()> {
        if self.json {
            if !self.first {
                writeln!(out)?;
            }
            writeln!(out, "]")?;
        }
        Ok(())
    }
}

async fn show(
    store: &dyn Storage,
    client_id: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let id = parse_id(client_id)?;
    let client = store.get_client(&id).await?.with_context(|| no_such(&id))?;
    let value = view(&client);
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
    Ok(())
}

async fn set_enabled(
    store: &dyn Storage,
    client_id: &str,
    enabled: bool,
) -> anyhow::Result<ClientId> {
    let id = parse_id(client_id)?;
    if !store.set_client_enabled(&id, enabled, unix_now()).await? {
        bail!(no_such(&id));
    }
    Ok(id)
}

async fn delete(
    store: &dyn Storage,
    client_id: &str,
    confirm_delete: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let id = parse_id(client_id)?;
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
    Ok(())
}

fn new_client(settings: &Settings, args: CreateArgs) -> anyhow::Result<(Client, SecretString)> {
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
    let now = unix_now();
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
