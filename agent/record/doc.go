// Package record is the format of what the store-and-forward buffer holds:
// one record per device event, a scan's or a push's changed samples
// (Data), a device coming online with the value of every tag (Online), or
// going offline (Offline).
//
// Records name devices and tags by name, not position, so a record written
// before a configuration change or an upgrade is still understood after
// it: samples of tags that no longer exist, or whose type changed, are
// found out and dropped by the reader, never given to another tag. A
// record also carries each sample's tag position when it was written, a
// hint that spares the reader a lookup while the configuration is
// unchanged (the name decides).
//
// Layout, version 2 (little-endian varints):
//
//	version(1) kind(1) uvarint(len) device-id  varint(time ms)  uvarint(n)
//	n × { uvarint(len) name  uvarint(index)  type(1) quality(1)  varint(ts - time)  value }
//
// value: bool and unsigned as uvarint, signed and datetime as zigzag varint,
// float32 as 4 bytes, float64 as 8 bytes, string as uvarint(len) bytes.
//
// Decoding never panics and never allocates beyond the record's size,
// whatever the bytes (a fuzz target checks).
package record
