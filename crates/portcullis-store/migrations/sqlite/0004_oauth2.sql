-- portcullis 0004: OAuth2 (django-oauth-toolkit's Application, AccessToken,
-- RefreshToken and Grant, in two tables). Client secrets, tokens and codes
-- are stored only as keyed digests: a stolen database yields no usable
-- credential. Lists (redirect URIs, grants, scopes) are space-separated.
-- Times are seconds since the Unix epoch. Tokens go with their client and
-- their user; `portcullis cleartokens` removes expired rows.

CREATE TABLE "portcullis_oauth2_client" (
    "client_id" varchar(100) NOT NULL PRIMARY KEY,
    "name" varchar(255) NOT NULL,
    "is_public" integer NOT NULL,
    "secret_digest" varchar(100) NULL,
    "redirect_uris" text NOT NULL,
    "grant_types" text NOT NULL,
    "scope" text NOT NULL,
    "skip_authorization" integer NOT NULL,
    "created" bigint NOT NULL
);

CREATE TABLE "portcullis_oauth2_token" (
    "digest" varchar(100) NOT NULL PRIMARY KEY,
    "kind" varchar(16) NOT NULL,
    "client_id" varchar(100) NOT NULL
        REFERENCES "portcullis_oauth2_client" ("client_id") ON DELETE CASCADE,
    "user_id" integer NULL
        REFERENCES "auth_user" ("id") ON DELETE CASCADE,
    "scope" text NOT NULL,
    "family" varchar(100) NOT NULL,
    "revoked" integer NOT NULL,
    "expires" bigint NULL,
    "redirect_uri" text NULL,
    "code_challenge" varchar(128) NULL,
    "code_challenge_method" varchar(16) NULL,
    "created" bigint NOT NULL
);

CREATE INDEX "portcullis_oauth2_token_family" ON "portcullis_oauth2_token" ("family");
CREATE INDEX "portcullis_oauth2_token_client_id" ON "portcullis_oauth2_token" ("client_id");
CREATE INDEX "portcullis_oauth2_token_user_id" ON "portcullis_oauth2_token" ("user_id");
CREATE INDEX "portcullis_oauth2_token_expires" ON "portcullis_oauth2_token" ("expires");
