// Package record is the format of what the store-and-forward buffer holds:
// one record per device event, a scan's or a push's changed samples
// (Data), a device coming online with the value of every tag (Online), or
// going offline (Offline).
//
// # Version 3 (written)
//
// A record names its device and tags through a Schema: the device id and
// its tags' names and types, stored once in the buffer (buffer.PutExtra,
// durable before the first record that uses it) under an id that is a
// digest of its content. A record carries only the schema id, and each
// sample its tag's position in the schema, so a sample costs a few bytes
// whatever the tag's name:
//
//	3  kind(1)  schema-id(8, little-endian)  varint(time ms)  uvarint(n)
//	n × { uvarint(head)  [varint(ts − previous ts)]  [quality(1)]  [value] }
//
// head = zigzag(index − previous index − 1) << 2 | time-differs << 1 |
// not-good. The first sample's previous index is −1 and its previous
// time the record's time, so consecutive tags read at the scan's time
// cost one head byte. The value is encoded by the schema's type for that
// tag: bool one byte, unsigned a uvarint, signed and datetime a zigzag
// varint, float32 4 bytes, float64 8 bytes, string a uvarint length and the
// bytes. A Bad sample has no value (it is the type's zero, published as
// null). An unscaled 16-bit register, Good, read with the scan: 2 to 4
// bytes; a Double 9 or 10; a Bad sample 2.
//
// A reader resolves the schema to the device's tags of the moment by name
// and type: a record written before a configuration change, a reload or an
// upgrade is still understood, and samples of tags since removed,
// renamed or retyped are found out and dropped by the reader, never given
// to another tag. A record whose schema is missing is unreadable, never
// guessed at.
//
// # Version 2 (read)
//
// Records of the release before version 3 named device and tags in every
// record; they are still read, so a gateway upgraded with a backlog on
// disk delivers it:
//
//	2  kind(1)  uvarint(len) device-id  varint(time ms)  uvarint(n)
//	n × { uvarint(len) name  uvarint(index)  type(1)  quality(1)  varint(ts − time)  value }
//
// Decoding never panics and never allocates beyond the record's size,
// whatever the bytes (fuzz targets check both versions).
package record
