-- portcullis 0002: simplejwt's token_blacklist app. Refresh tokens issued
-- (outstanding) and those refused from now on (blacklisted), by their `jti`.
-- The token text itself is never stored: a stolen database must not yield
-- usable credentials. Rows go with their user, and a blacklist entry with
-- its outstanding token; `portcullis flush-expired-tokens` removes expired
-- rows. Timestamps are UTC text, as in 0001.

CREATE TABLE "portcullis_jwt_outstanding" (
    "jti" varchar(255) NOT NULL PRIMARY KEY,
    "user_id" integer NULL
        REFERENCES "auth_user" ("id") ON DELETE CASCADE,
    "created_at" datetime NOT NULL,
    "expires_at" datetime NOT NULL
);

CREATE INDEX "portcullis_jwt_outstanding_user_id" ON "portcullis_jwt_outstanding" ("user_id");
CREATE INDEX "portcullis_jwt_outstanding_expires_at" ON "portcullis_jwt_outstanding" ("expires_at");

CREATE TABLE "portcullis_jwt_blacklisted" (
    "jti" varchar(255) NOT NULL PRIMARY KEY
        REFERENCES "portcullis_jwt_outstanding" ("jti") ON DELETE CASCADE,
    "blacklisted_at" datetime NOT NULL
);
