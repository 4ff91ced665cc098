-- A replica that stops cleanly is no longer counted at once.
DELETE FROM {schema}.lease_members WHERE lease_group = $1 AND member = $2
