//! The command line: `warrant serve`, `warrant client …`. Doc comments here
//! are the `--help` text.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret as _;

use crate::configuration::Settings;
use crate::credentials::{generate_secret, hash_secret};
use crate::crypto::{b64url, random_bytes};
use crate::domain::{Audience, Client, ClientId, GrantType, ScopeSet};
use crate::startup::{Application, open_storage};

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
    /// Manage clients: who may obtain tokens, for which scopes and audiences.
    #[command(subcommand)]
    Client(ClientCommand),
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
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop issuing tokens to a client (its existing tokens stay valid
    /// until they expire).
    Disable { client_id: String },
    /// Issue tokens to a disabled client again.
    Enable { client_id: String },
    /// Delete a client for good.
    Delete {
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
    /// Print JSON (with the secret) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn serve_command(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    application.run_until_stopped().await?;
    Ok(())
}

pub async fn client_command(settings: Settings, command: ClientCommand) -> anyhow::Result<()> {
    let store = open_storage(&settings).await?;
    let mut out = std::io::stdout().lock();
    match command {
        ClientCommand::Create(args) => {
            let json = args.json;
            let (client, secret) = new_client(&settings, args)?;
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
        token_ttl_secs: ttl,
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
