// Package sparkplug implements the Sparkplug B 3.0 wire formats an edge node
// needs: topics, protobuf payloads and the Primary Host STATE message. It is
// pure: no network, file or clock access; callers pass timestamps (UTC
// milliseconds) and own the seq and bdSeq counters.
//
// # Encoding
//
// The Append functions append one complete payload to dst and return the
// extended slice. They write the protobuf wire format directly and allocate
// nothing beyond growing dst, so a publisher that reuses its buffer encodes
// without garbage. What each message carries (Sparkplug 3.0 ch.6):
//
//	AppendBirth       NBIRTH/DBIRTH: timestamp, seq (explicit, even 0); each metric
//	                  with name, alias (if HasAlias), datatype and value
//	AppendData        NDATA/DDATA: timestamp, seq; each metric with its alias only
//	                  when HasAlias, else its name; no datatype
//	AppendDeviceDeath DDEATH: timestamp, seq, no metrics
//	AppendNodeDeath   NDEATH (the MQTT Will): only the bdSeq metric (Int64,
//	                  long_value), no seq; timestamp only if non-zero
//	AppendCommand     NCMD/DCMD as a host sends them: timestamp, name or alias,
//	                  datatype and value, no seq
//
// A metric's value goes in the field its Type selects: Int8, Int16, Int32 in
// int_value sign-extended to 32 bits; UInt8, UInt16, UInt32 in int_value (the
// spec's table; tahu writes UInt32 to long_value, see Decode); Int64, UInt64,
// DateTime in long_value; Float in float_value, Double in double_value,
// Boolean in boolean_value; String, Text, UUID in string_value; Bytes, File
// and the array types (already packed little-endian by the caller) in
// bytes_value. Integers wider than the type are truncated to its width. A
// DataSet or Template metric carries its already serialised DataSet or
// Template message in Bytes (see Templates). A Null metric has is_null set
// and no value.
// Metric timestamps are written when non-zero. Properties are written as
// parallel key and value arrays, each PropertyValue with its type. MetaData
// is neither written nor decoded.
//
// # Decoding
//
// Decode parses any payload with the generated types in sparkplugpb. It is
// lenient where real encoders differ and strict where a wrong value would
// reach a PLC: an integer type may arrive in int_value or long_value (UInt32
// in long_value is what tahu sends; Quality properties come as Int32 per the
// spec or Int64 per the TCK) and is range-checked against its type; Int8 and
// Int16 in int_value are accepted both sign- and zero-extended. A value in
// a field that cannot carry its datatype, or a typed metric that has neither
// a value nor is_null, fails the whole payload with ErrTypeMismatch.
// NDATA/DDATA and commands normally omit the datatype: Decode then keeps the
// raw field (Metric.Kind says which) and the caller completes the metric with
// Resolve and the type from the BIRTH.
//
// # Templates
//
// A Template (a UDT) travels as a metric of TypeTemplate whose Bytes is the
// serialised Payload.Template message: AppendTemplate writes it (by hand,
// like the payload encoders), DecodeTemplate reads it back, and both payload
// encoders and Decode carry it opaquely, so a template metric follows the
// same name/alias/datatype rules as any other. A device sharing a tag map
// with others is published as:
//
//	NBIRTH  the definition: metric named after the template (e.g. "Press"),
//	        IsDefinition, no Ref, every member with its default value, every
//	        parameter (with its default, or Null)
//	DBIRTH  an instance: IsDefinition false, Ref "Press", every member
//	DDATA   an instance with only the changed members
//
// Members carry their name, never an alias, and their datatype in every
// message type, DATA included: hosts keep no alias or type table for members,
// so the spec's "datatype SHOULD NOT be sent in DATA" is applied to the
// template metric only. Template.Validate checks the rules that need no
// other message. In DATA the template metric arrives without a datatype, so
// Decode returns it with Type TypeUnknown and Kind KindTemplate; its Bytes
// decode with DecodeTemplate all the same. Members that carry a datatype
// (ours always do) come back resolved, others raw, for Resolve with the
// definition's member type; a member that is itself a template comes back
// as Bytes, for another DecodeTemplate.
package sparkplug
