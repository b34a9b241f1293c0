package main

func newOplogCommand() *command {
	return &command{
		name: "oplog", short: "the mutation log: push it, see its state",
		long: `The operation log holds every mutation of the graph, sealed into segments
about once a second, so restore --at and --lsn can rebuild the graph at any
second (SPEC section 5).`,
		subs: []*command{newOplogPushCommand(), newOplogStatusCommand()},
	}
}
