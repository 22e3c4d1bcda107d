-- portcullis 0001: users (Django's auth_user, column for column), tokens and
-- sessions. SQLite compares text with BINARY collation, so usernames are
-- case-sensitive. Timestamps are stored as Django stores them on SQLite:
-- UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', which sorts chronologically.

CREATE TABLE "auth_user" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "password" varchar(128) NOT NULL,
    "last_login" datetime NULL,
    "is_superuser" bool NOT NULL,
    "username" varchar(150) NOT NULL UNIQUE,
    "first_name" varchar(150) NOT NULL,
    "last_name" varchar(150) NOT NULL,
    "email" varchar(254) NOT NULL,
    "is_staff" bool NOT NULL,
    "is_active" bool NOT NULL,
    "date_joined" datetime NOT NULL
);

CREATE TABLE "portcullis_token" (
    "user_id" integer NOT NULL PRIMARY KEY
        REFERENCES "auth_user" ("id") ON DELETE CASCADE,
    "digest" varchar(128) NOT NULL UNIQUE,
    "sealed_key" text NOT NULL,
    "created" datetime NOT NULL
);

CREATE TABLE "portcullis_session" (
    "key_digest" varchar(128) NOT NULL PRIMARY KEY,
    "user_id" integer NOT NULL
        REFERENCES "auth_user" ("id") ON DELETE CASCADE,
    "data" text NOT NULL,
    "expires" datetime NOT NULL
);

CREATE INDEX "portcullis_session_user_id" ON "portcullis_session" ("user_id");
CREATE INDEX "portcullis_session_expires" ON "portcullis_session" ("expires");
