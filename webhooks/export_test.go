package webhooks

// GateFlushes makes d call gate before it writes each batch of attempt
// outcomes; gate returning false drops the batch, as a crash between the
// attempts and their recording would. Call it before Run.
func GateFlushes(d *Dispatcher, gate func() bool) { d.flushGate = gate }
