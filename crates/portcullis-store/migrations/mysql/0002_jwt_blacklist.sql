-- portcullis 0002: simplejwt's token_blacklist app. Refresh tokens issued
-- (outstanding) and those refused from now on (blacklisted), by their `jti`.
-- The token text itself is never stored: a stolen database must not yield
-- usable credentials. Rows go with their user, and a blacklist entry with
-- its outstanding token; `portcullis flush-expired-tokens` removes expired
-- rows. `jti` is VARBINARY (up to 255 four-byte characters) so ids compare
-- exactly, trailing spaces included (utf8mb4_bin pads).

CREATE TABLE portcullis_jwt_outstanding (
    jti varbinary(1020) NOT NULL PRIMARY KEY,
    user_id bigint NULL,
    created_at datetime(6) NOT NULL,
    expires_at datetime(6) NOT NULL,
    INDEX portcullis_jwt_outstanding_user_id (user_id),
    INDEX portcullis_jwt_outstanding_expires_at (expires_at),
    CONSTRAINT portcullis_jwt_outstanding_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE portcullis_jwt_blacklisted (
    jti varbinary(1020) NOT NULL PRIMARY KEY,
    blacklisted_at datetime(6) NOT NULL,
    CONSTRAINT portcullis_jwt_blacklisted_jti_fk
        FOREIGN KEY (jti) REFERENCES portcullis_jwt_outstanding (jti) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
