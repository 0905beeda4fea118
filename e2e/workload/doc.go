// Package workload is a Kubernetes API workload that keeps score: the
// client side of the fault matrix (issue 3, item 2).
//
// It drives ConfigMaps through one or more kube-apiserver endpoints with
// client-go's REST client, records every operation with its invocation and
// completion time and outcome, and checks after a run:
//
//   - Lost: no acknowledged write is missing from the final state, unless it
//     is in the losing node's split-brain archive;
//   - CheckLinearizable: the history is linearizable (porcupine, key-value
//     model partitioned by key, unknown outcomes modelled as "may take
//     effect at any time after invocation");
//   - WatchChecker: a client-go Reflector (what informers use) whose watches
//     never deliver a resourceVersion lower than one delivered before, and
//     which resumes or relists by itself when a failover breaks its watch;
//     it records what it was given (WatchReport.Steps), which JudgeWatch
//     judges again, so a recorded watch is a test case.
//
// The checks that need to know the pair (which answers came from a split's
// losing side, and whether the history holds without them) are in
// e2e/check.
//
// Outcomes. Every operation ends as one of
//
//	ok       the API server acknowledged it
//	failed   it certainly did not take effect: the server decided against
//	         it (409 AlreadyExists/Conflict, 404 NotFound, 400, 403, 422,
//	         429 ...)
//	unknown  it may or may not have taken effect: timeouts, connection
//	         errors, 5xx
//
// client-go's own retries are switched off (MaxRetries(0)): client-go
// re-sends a POST after a 5xx carrying Retry-After, and a create whose first
// attempt committed would then come back as a 409 AlreadyExists, a
// "definite" failure that is false. Each attempt is recorded as what it is;
// a failed or unknown operation is never retried with the same value.
//
// Resource versions are opaque strings for Kubernetes clients. On an API
// server backed by etcd or Kine they are the store's revision, so the watch
// checker (and nothing else) parses them as int64 to compare them; an
// unparsable one is reported, not guessed at.
//
// In outline, a scenario:
//
//	w, _ := workload.New(workload.Config{Name: "leader-crash", Endpoints: cfgs, Duration: 60 * time.Second})
//	wc, _ := workload.StartWatch(ctx, cfgs, workload.WatchOptions{LabelSelector: w.LabelSelector()})
//	go w.Run(ctx)
//	fault := time.Now(); /* inject the fault, wait, heal */
//	ops := w.Wait()
//	final, _ := w.ReadFinal(ctx)                       // also recorded as reads
//	lost := workload.Lost(final, w.Ops(), archive)     // archive.AddStored(row.Name, row.Value, row.Deleted, row.PrevRevision) per archived Kine row
//	lin, _ := workload.CheckLinearizable(w.Ops(), workload.CheckOptions{VisualizePath: "lin.html"})
//	_ = wc.WaitForRV(ctx, workload.MaxAckedRV(w.Ops())) // the watch caught up by itself
//	rep := wc.Stop()                                   // rep.Regressions == 0, rep.Resumes+rep.Relists > 0
//	r := workload.NewResult("leader-crash", w.Ops(), fault, lost, lin)
//	workload.PrintResult(os.Stdout, r)
package workload
