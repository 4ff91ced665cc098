-- Records why the owner holds a partition of its slot back ($5; NULL: it
-- reads normally again). Only by the slot's owner at its epoch.
UPDATE {schema}.leases SET held = $5
WHERE lease_group = $1 AND slot = $2 AND owner = $3 AND epoch = $4
  AND held IS DISTINCT FROM $5
