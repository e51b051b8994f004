"""Jobs: the state machine (`machine`), creating them (`submit`), running them (`runner`, `outputs`), why they
fail (`failures`), what a final state sets off (`finished`: webhook events, batch completion) and finding the
stuck ones (`reconcile`)."""
