-- portcullis 0003: failed logins counted for the lockout (django-axes'
-- model), one row a key (`lockout:username:<name>` or `lockout:ip:<addr>`).
-- Times are milliseconds since the Unix epoch, as the server's clock gives
-- them; a row whose `expires_ms` has passed counts as absent and is
-- restarted by the next failure.

CREATE TABLE portcullis_login_failure (
    lockout_key varchar(255) PRIMARY KEY,
    failures bigint NOT NULL,
    last_failure_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
);

CREATE INDEX portcullis_login_failure_expires ON portcullis_login_failure (expires_ms);
