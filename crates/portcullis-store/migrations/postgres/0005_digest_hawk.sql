-- portcullis 0005: credentials of the signed-request schemes Digest and Hawk.
-- `portcullis_digest_ha1`: a user's realm digests (HA1 for MD5 and SHA-256),
-- password-equivalent for the realm, so sealed with the secret key and bound
-- to the user's current password hash. `portcullis_hawk_credential`: Hawk ids
-- with their keys, sealed with the secret key (the server needs the key
-- itself to check MACs). Rows go with their user.

CREATE TABLE portcullis_digest_ha1 (
    user_id bigint PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
    sealed text NOT NULL,
    updated timestamp with time zone NOT NULL
);

CREATE TABLE portcullis_hawk_credential (
    id varchar(64) PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    sealed_key text NOT NULL,
    created timestamp with time zone NOT NULL
);

CREATE INDEX portcullis_hawk_credential_user_id ON portcullis_hawk_credential (user_id);
