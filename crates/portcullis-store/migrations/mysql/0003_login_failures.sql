-- portcullis 0003: failed logins counted for the lockout (django-axes'
-- model), one row a key (`lockout:username:<name>` or `lockout:ip:<addr>`).
-- The key is binary, so it compares byte for byte (no case folding, no
-- PAD SPACE). Times are milliseconds since the Unix epoch, as the server's
-- clock gives them; a row whose `expires_ms` has passed counts as absent
-- and is restarted by the next failure.

CREATE TABLE portcullis_login_failure (
    lockout_key varbinary(255) NOT NULL PRIMARY KEY,
    failures int NOT NULL,
    last_failure_ms bigint NOT NULL,
    expires_ms bigint NOT NULL,
    INDEX portcullis_login_failure_expires (expires_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
