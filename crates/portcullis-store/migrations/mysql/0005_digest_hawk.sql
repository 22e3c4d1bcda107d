-- portcullis 0005: credentials of the signed-request schemes Digest and Hawk.
-- `portcullis_digest_ha1`: a user's realm digests (HA1 for MD5 and SHA-256),
-- password-equivalent for the realm, so sealed with the secret key and bound
-- to the user's current password hash. `portcullis_hawk_credential`: Hawk ids
-- with their keys, sealed with the secret key (the server needs the key
-- itself to check MACs). Rows go with their user. The Hawk id is binary, so
-- it compares byte for byte (no case folding, no PAD SPACE).

CREATE TABLE portcullis_digest_ha1 (
    user_id bigint NOT NULL PRIMARY KEY,
    sealed text NOT NULL,
    updated datetime(6) NOT NULL,
    CONSTRAINT portcullis_digest_ha1_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE portcullis_hawk_credential (
    id varbinary(64) NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL,
    sealed_key text NOT NULL,
    created datetime(6) NOT NULL,
    INDEX portcullis_hawk_credential_user_id (user_id),
    CONSTRAINT portcullis_hawk_credential_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
