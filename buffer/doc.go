// Package buffer is the agent's durable FIFO: opaque records ([]byte the agent
// encodes) stored in a bbolt file, read in order, deleted only when the caller
// acknowledges them. It knows nothing about Sparkplug or MQTT.
//
// # Life cycle
//
//	b, err := buffer.Open(buffer.Options{Path: "/var/lib/edgeagent/buffer.db"})
//	first, last, err := b.Append(rec1, rec2)   // any goroutine, concurrently
//	recs, err := b.Peek(after, 500, 1<<20)     // oldest records with Seq > after
//	... publish recs, obtain proof of receipt ...
//	err = b.Ack(recs[len(recs)-1].Seq)         // deletes every record with Seq <= that
//	err = b.Close()
//
// # Ordering and sequence numbers
//
// Every record gets a uint64 sequence number, strictly increasing in append
// order and never reused, also across restarts, crashes and an emptied queue:
// the high-water mark is persisted in the file, in the same transaction as
// the records. When a corrupt file is replaced (see below), numbering goes on
// above the old file's high-water mark if it can still be read, else above
// the wall clock in microseconds. Records passed to one Append call get
// consecutive numbers. Numbers may have gaps: records dropped by the cap, a
// failed commit, numbers reserved but lost in Outage mode after a crash.
// Peek returns records in sequence order, which is append order.
//
// # Durability (Mode)
//
// WriteAhead (the default): Append returns only after its records are
// committed and fsync'd. A kill -9 or power cut at any instant loses no
// record whose Append returned nil. Concurrent appenders are coalesced by one
// writer goroutine into one bbolt transaction (one fsync) per group ("group
// commit"), so throughput grows with the number of appenders.
//
// Outage: while the caller reports the link up (SetLinkUp(true)) and nothing
// is waiting on disk, appended records are kept only in a bounded in-memory
// queue (Options.MaxMemBytes) and never touch the disk; SetLinkUp(false), a
// full memory queue and Close write them to disk in one transaction. The trade
// is plain: a kill -9 or power cut in Outage mode loses the in-memory window
// (at most MaxMemBytes, shown by Stats.MemRecords); WriteAhead loses nothing.
// After the link comes back, appends keep going to disk until the disk backlog
// is acknowledged empty, then return to memory, so disk records are always
// older than memory records and order stays simple.
//
// Ack is durable (committed and fsync'd) when it deletes disk records, so a
// restart re-delivers at most the records that were not yet acknowledged.
//
// # Extras
//
// PutExtra keeps small named values beside the records, durably: what a
// reader needs to understand the records (the agent's record schemas),
// written before the records that need it. They survive restarts and
// compaction and are never dropped by the cap.
//
// # Size cap
//
// Options.MaxBytes bounds the file: it never grows past MaxBytes plus one
// page (4 KiB), so a gateway's SD card can be sized by it (for caps of
// 256 KiB and more; the agent's minimum is 1 MiB). Before a transaction
// that writes records, the writer checks that the pages it will need are
// free or that the file may still grow by as many; if not, the oldest
// records are dropped first, in a transaction of their own (pages freed
// in a transaction are reused only by later ones). bbolt grows the file by
// one page at a time near the bound. Records are stored in entries of at
// most 2,000 bytes, two of which always fit a page, so bbolt never needs
// a run of contiguous pages that scattered free pages could not offer.
// MaxBytes also caps the records' accounted size, len(data)+RecordOverhead
// each. How many records fit depends on page fill: about 90 % of MaxBytes
// holds records when they are deleted from the front; acknowledging live
// records while older history waits leaves partly filled pages.
//
// Drops are counted in Stats.Dropped/DroppedBytes and logged as a warning
// (at once, then at most once per 10 s with totals). Append never blocks
// on, and never fails because of, the cap; a single record larger than
// the cap is rejected with ErrTooLarge.
//
// # Crashes, corruption and disk space
//
// Open checks the file and repairs what it safely can:
//   - A file that cannot be a buffer (not a bbolt file, zero bytes, truncated,
//     failing the consistency check) is renamed to <path>.corrupt-<UTC time>,
//     logged at error level with both paths and the cause, and a fresh
//     buffer is opened. Truncation is caught by reading bbolt's meta pages
//     before bbolt maps the file. The full check (a walk of every record
//     plus bbolt's Tx.Check) reads the whole file, so it runs only when the
//     file was not closed cleanly (a flag written by Close): measured 42 ms
//     for a 121 MB file in the page cache; from an SD card, the time to
//     read the file. A clean open costs a walk of the file's pages, since bbolt
//     rebuilds its freelist instead of writing it on every commit (one page
//     less per fsync on the gateway's flash).
//   - A file locked by another process fails after about 1 s with ErrLocked
//     instead of hanging.
//   - bbolt never shrinks its file when records are deleted. At Open, a file
//     larger than 4 MiB and than twice its live data plus 4 MiB is compacted
//     (bbolt.Compact into <path>.compact, fsync, atomic rename, fsync of the
//     directory); the cost is a copy of the live records and as much free
//     disk (measured: 8 MB live out of a 128 MB file in 0.15 s). The same is
//     done while running when the queue has drained empty and the file is
//     larger than 4 MiB (at most once a minute; cheap then, nothing to
//     copy). That also shortens the page walk bbolt does at open to rebuild
//     its freelist. A compaction
//     that fails (e.g. disk full) is logged and the old file kept.
//
// # Memory
//
// Memory is bounded whatever the backlog: Peek reads at most the requested
// batch and copies it out of the transaction, the writer commits groups of at
// most a few MiB, large Acks are deleted in chunks, and the Outage memory
// queue is capped. The backlog itself lives in the memory-mapped file.
package buffer
