-- portcullis 0001: users (Django's auth_user, column for column, with a
-- 64-bit id), tokens and sessions, for MariaDB (and MySQL). Usernames and
-- digests use the binary collation so they compare case-sensitively.
-- Timestamps are DATETIME(6) holding UTC, as Django stores them.

CREATE TABLE auth_user (
    id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
    password varchar(128) NOT NULL,
    last_login datetime(6) NULL,
    is_superuser bool NOT NULL,
    username varchar(150) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE,
    first_name varchar(150) NOT NULL,
    last_name varchar(150) NOT NULL,
    email varchar(254) NOT NULL,
    is_staff bool NOT NULL,
    is_active bool NOT NULL,
    date_joined datetime(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE portcullis_token (
    user_id bigint NOT NULL PRIMARY KEY,
    digest varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE,
    sealed_key text NOT NULL,
    created datetime(6) NOT NULL,
    CONSTRAINT portcullis_token_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE portcullis_session (
    key_digest varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL,
    data longtext NOT NULL,
    expires datetime(6) NOT NULL,
    INDEX portcullis_session_user_id (user_id),
    INDEX portcullis_session_expires (expires),
    CONSTRAINT portcullis_session_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
