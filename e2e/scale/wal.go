package scale

// The long outage's two ways (Options.LongOutage).
const (
	// The returning node's data directory removed while it is down: it
	// joins by base backup, as a replaced node does.
	outageDataRemoved = "data-removed"
	// The leader writes WAL until its slot for the absent node passes
	// max_slot_wal_keep_size and a checkpoint drops what the node would
	// need: the outage as it happens, whatever the agent then does.
	outageWALDropped = "wal-dropped"
)
