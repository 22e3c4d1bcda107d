-- portcullis 0004: OAuth2 (django-oauth-toolkit's Application, AccessToken,
-- RefreshToken and Grant, in two tables). Client secrets, tokens and codes
-- are stored only as keyed digests: a stolen database yields no usable
-- credential. Lists (redirect URIs, grants, scopes) are space-separated.
-- Times are seconds since the Unix epoch. Tokens go with their client and
-- their user; `portcullis cleartokens` removes expired rows. Ids and digests
-- are ASCII with a binary collation so they compare exactly (the store
-- refuses anything else before it reaches SQL).

CREATE TABLE portcullis_oauth2_client (
    client_id varchar(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    name varchar(255) NOT NULL,
    is_public integer NOT NULL,
    secret_digest varchar(100) CHARACTER SET ascii COLLATE ascii_bin NULL,
    redirect_uris text NOT NULL,
    grant_types text NOT NULL,
    scope text NOT NULL,
    skip_authorization integer NOT NULL,
    created bigint NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE portcullis_oauth2_token (
    digest varchar(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    kind varchar(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    client_id varchar(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id bigint NULL,
    scope text NOT NULL,
    family varchar(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    revoked integer NOT NULL,
    expires bigint NULL,
    redirect_uri text NULL,
    code_challenge varchar(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    code_challenge_method varchar(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created bigint NOT NULL,
    INDEX portcullis_oauth2_token_family (family),
    INDEX portcullis_oauth2_token_client_id (client_id),
    INDEX portcullis_oauth2_token_user_id (user_id),
    INDEX portcullis_oauth2_token_expires (expires),
    CONSTRAINT portcullis_oauth2_token_client_fk
        FOREIGN KEY (client_id) REFERENCES portcullis_oauth2_client (client_id) ON DELETE CASCADE,
    CONSTRAINT portcullis_oauth2_token_user_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
