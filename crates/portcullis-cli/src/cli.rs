//! The command line, as clap derives it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Django REST framework-style authentication for axum: manage users and
/// tokens, and serve the reference app.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
pub struct Cli {
    /// Where the database is.
    #[command(flatten)]
    pub database: DatabaseOpt,

    /// A TOML settings file; keys are the settings' names (database_url,
    /// secret_key, bind, password_iterations, ...). Environment variables
    /// (PORTCULLIS_ and the name in capitals) and flags beat it.
    #[arg(long, global = true, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The database to use, shared by every command.
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseOpt {
    /// Database URL: sqlite://PATH, postgres://... or mysql://... (MariaDB).
    /// Else $PORTCULLIS_DATABASE_URL, else $DATABASE_URL, else
    /// sqlite://portcullis.db in the working directory.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Where a new password comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct PasswordOpt {
    /// The password (visible to other local users in the process list;
    /// prefer --password-stdin).
    #[arg(long, value_name = "P", conflicts_with = "password_stdin")]
    pub password: Option<String>,

    /// Read the password from standard input (one trailing newline is
    /// removed).
    #[arg(long)]
    pub password_stdin: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (idempotent).
    Migrate,

    /// Create a user.
    #[command(name = "createuser")]
    CreateUser(CreateUserArgs),

    /// Set a user's password and end the user's sessions.
    #[command(name = "changepassword")]
    ChangePassword(ChangePasswordArgs),

    /// Print the user's API token, creating one if needed.
    #[command(name = "create-token")]
    CreateToken(CreateTokenArgs),

    /// Mark a user inactive: the user can no longer authenticate.
    Deactivate(UserArg),

    /// Mark a user active again.
    Activate(UserArg),

    /// Delete a user with the user's token and sessions.
    #[command(name = "deleteuser")]
    DeleteUser(UserArg),

    /// Clear the login lockout of a username or a client address.
    Unlock(UnlockArgs),

    /// Migrate, then serve the reference app until SIGINT or SIGTERM.
    Serve(ServeArgs),

    /// Write a new key pair for signing JWTs with RS256, ES256, EdDSA, ...
    #[command(name = "create-jwt-key")]
    CreateJwtKey(CreateJwtKeyArgs),

    /// Issue Hawk credentials for a user: prints id, key and algorithm.
    #[command(name = "create-hawk-credentials")]
    CreateHawkCredentials(UserArg),

    /// Delete expired outstanding and blacklisted JWT refresh tokens
    /// (simplejwt's flushexpiredtokens).
    #[command(name = "flush-expired-tokens")]
    FlushExpiredTokens,

    /// Register an OAuth2 client; prints its id (and secret, once).
    #[command(name = "createclient")]
    CreateClient(CreateClientArgs),

    /// List the OAuth2 clients.
    #[command(name = "listclients")]
    ListClients,

    /// Delete an OAuth2 client with its tokens.
    #[command(name = "deleteclient")]
    DeleteClient(DeleteClientArgs),

    /// Delete expired OAuth2 tokens and authorization codes
    /// (django-oauth-toolkit's cleartokens).
    #[command(name = "cleartokens")]
    ClearTokens,

    /// Register a key for HTTP Message Signatures (RFC 9421), from a public
    /// key file or newly generated.
    #[command(name = "add-signature-key")]
    AddSignatureKey(AddSignatureKeyArgs),

    /// Register an OAuth 1.0a consumer (client credentials).
    #[command(name = "create-oauth1-consumer")]
    CreateOAuth1Consumer(CreateOAuth1ConsumerArgs),

    /// Issue an OAuth 1.0a access token for a user to a consumer.
    #[command(name = "create-oauth1-token")]
    CreateOAuth1Token(CreateOAuth1TokenArgs),
}

/// `createclient`'s arguments.
#[derive(Debug, Args)]
pub struct CreateClientArgs {
    /// The client's name, shown on the consent page.
    pub name: String,

    /// A public client (no secret; PKCE with S256 required).
    #[arg(long)]
    pub public: bool,

    /// A grant the client may use: authorization-code, client-credentials,
    /// password or refresh-token; repeat for more [default:
    /// authorization-code, client-credentials, refresh-token].
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,

    /// A redirect URI for the authorization-code grant: `http(s)://HOST/...`
    /// or a reversed-domain private-use scheme (`com.example.app:/cb`);
    /// repeat for more.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,

    /// A scope the client may ask for; repeat for more [default: read,
    /// write].
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,

    /// Skip the consent page for this client.
    #[arg(long)]
    pub skip_authorization: bool,
}

/// `deleteclient`'s arguments.
#[derive(Debug, Args)]
pub struct DeleteClientArgs {
    /// The client's id.
    pub client_id: String,
}

/// `createuser`'s arguments.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// The new user's login name (case-sensitive).
    pub username: String,

    /// E-mail address, checked in the common forms Django's
    /// `EmailValidator` takes (no quoted local parts or address literals).
    #[arg(long, value_name = "E", default_value = "")]
    pub email: String,

    /// The password; without one the user gets an unusable password (no
    /// password login, as Django's set_unusable_password).
    #[command(flatten)]
    pub password: PasswordOpt,

    /// Create the user inactive.
    #[arg(long)]
    pub inactive: bool,

    /// Staff (passes IsAdminUser).
    #[arg(long)]
    pub staff: bool,

    /// Superuser; implies --staff, as Django's createsuperuser.
    #[arg(long)]
    pub superuser: bool,
}

/// `changepassword`'s arguments.
#[derive(Debug, Args)]
pub struct ChangePasswordArgs {
    /// Whose password.
    pub username: String,

    /// The new password (one of the two is required).
    #[command(flatten)]
    pub password: PasswordOpt,
}

/// `create-token`'s arguments.
#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    /// Whose token.
    pub username: String,

    /// Replace the existing token with a new one.
    #[arg(short = 'r', long)]
    pub regenerate: bool,
}

/// A command's single username.
#[derive(Debug, Args)]
pub struct UserArg {
    /// The user.
    pub username: String,
}

/// `unlock`'s arguments.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The username or the IP address whose failed logins are forgotten.
    #[arg(value_name = "USERNAME|ADDRESS")]
    pub target: String,
}

/// `create-jwt-key`'s arguments.
#[derive(Debug, Args)]
pub struct CreateJwtKeyArgs {
    /// The algorithm: RS256, RS384, RS512, PS256, PS384, PS512, ES256 or
    /// EdDSA (HS256 and the other HMACs use the secret key).
    #[arg(long, value_name = "ALG")]
    pub alg: String,

    /// Where to write: PREFIX-private.pem (owner-only) and
    /// PREFIX-public.pem [default: jwt-ALG, e.g. jwt-es256].
    #[arg(long, value_name = "PREFIX")]
    pub out: Option<std::path::PathBuf>,
}

/// `add-signature-key`'s arguments.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["public_key_file", "generate"])))]
pub struct AddSignatureKeyArgs {
    /// The user the key authenticates.
    pub username: String,

    /// The `keyid` clients will name (unique, 1 to 255 characters).
    #[arg(long, value_name = "KID")]
    pub key_id: String,

    /// The algorithm: ed25519, ecdsa-p256-sha256, rsa-pss-sha512,
    /// rsa-v1_5-sha256 or hmac-sha256.
    #[arg(long, value_name = "ALG")]
    pub alg: String,

    /// The public key PEM (SubjectPublicKeyInfo; PKCS#1 also for RSA).
    #[arg(long, value_name = "PEM")]
    pub public_key_file: Option<std::path::PathBuf>,

    /// Generate the key: prints `secret: BASE64` for hmac-sha256, else
    /// the private key PEM; only the public key (or the sealed secret) is
    /// stored.
    #[arg(long)]
    pub generate: bool,
}

/// `create-oauth1-consumer`'s arguments.
#[derive(Debug, Args)]
pub struct CreateOAuth1ConsumerArgs {
    /// A name for people (shown on the consent form).
    pub name: String,

    /// An RSA public key PEM, for RSA-SHA1 signatures.
    #[arg(long, value_name = "PEM")]
    pub rsa_public_key_file: Option<std::path::PathBuf>,

    /// The callback URI the three-legged flow may send users back to
    /// (`oob` is always allowed).
    #[arg(long, value_name = "URI")]
    pub callback: Option<String>,
}

/// `create-oauth1-token`'s arguments.
#[derive(Debug, Args)]
pub struct CreateOAuth1TokenArgs {
    /// The consumer the token is issued to.
    pub consumer_key: String,

    /// The user the token authenticates.
    pub username: String,
}

/// `serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8000,
    /// or $PORTCULLIS_BIND].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_url_is_global() {
        let cli = Cli::try_parse_from([
            "portcullis",
            "create-token",
            "ada",
            "-r",
            "--database-url",
            "sqlite://x.db",
        ])
        .unwrap();
        assert_eq!(cli.database.database_url.as_deref(), Some("sqlite://x.db"));
        assert!(matches!(
            cli.command,
            Command::CreateToken(CreateTokenArgs {
                regenerate: true,
                ..
            })
        ));
    }

    #[test]
    fn password_sources_conflict() {
        assert!(Cli::try_parse_from([
            "portcullis",
            "createuser",
            "ada",
            "--password",
            "x",
            "--password-stdin"
        ])
        .is_err());
    }
}
