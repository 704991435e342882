package scan

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
)

// BenchmarkRecordDensity stores 1,000 scans of a 1,000-tag device in a
// buffer file as a scanner does (every tag changed, one record per scan)
// and reports what a sample costs: record bytes and file bytes (the
// pages the records take), in the
// format written (3) and, for comparison, in the release before (2, which
// named every tag in every record). The tags' names are short
// ("HR0042") or as plants write them
// ("Line3/Press01/Hydraulics/Register_0042"); format 3 does not depend on
// them.
func BenchmarkRecordDensity(b *testing.B) {
	const tags, scans = 1000, 1000
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name  string
		typ   drivers.Type
		value func(scan, i int) (drivers.Value, drivers.Quality)
	}{
		{"uint16", drivers.Uint16, func(scan, i int) (drivers.Value, drivers.Quality) {
			return drivers.UintValue(drivers.Uint16, uint64(r.IntN(65536))), drivers.QualityGood
		}},
		{"double", drivers.Float64, func(scan, i int) (drivers.Value, drivers.Quality) {
			return drivers.FloatValue(drivers.Float64, 20+r.Float64()*10), drivers.QualityGood
		}},
		{"string8", drivers.String, func(scan, i int) (drivers.Value, drivers.Quality) {
			return drivers.StringValue(fmt.Sprintf("RCP-%04d", r.IntN(10000))), drivers.QualityGood
		}},
		{"bad", drivers.Int32, func(scan, i int) (drivers.Value, drivers.Quality) {
			return drivers.ZeroValue(drivers.Int32), drivers.QualityBad
		}},
	} {
		for _, long := range []bool{false, true} {
			names := make([]string, tags)
			types := make([]drivers.Type, tags)
			dt := make([]drivers.Tag, tags)
			for i := range names {
				names[i] = fmt.Sprintf("HR%04d", i)
				if long {
					names[i] = fmt.Sprintf("Line3/Press01/Hydraulics/Register_%04d", i)
				}
				types[i] = c.typ
				dt[i] = drivers.Tag{Name: names[i], Type: c.typ}
			}
			label := "short"
			if long {
				label = "long"
			}
			b.Run(fmt.Sprintf("type=%s/names=%s", c.name, label), func(b *testing.B) {
				var v3, v2 int64
				var fileBytes int64
				for range b.N {
					dir := b.TempDir()
					path := filepath.Join(dir, "buffer.db")
					buf, err := buffer.Open(buffer.Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					store := NewStore(buf)
					id, err := store.Register(&record.Schema{Device: "press-01", Names: names, Types: types})
					if err != nil {
						b.Fatal(err)
					}
					var enc record.Encoder
					pts := make([]record.Point, tags)
					var batch [][]byte
					v3, v2 = 0, 0
					at := time.Now().Add(-time.Hour).UnixMilli()
					for scan := range scans {
						at += 1000
						for i := range pts {
							v, q := c.value(scan, i)
							pts[i] = record.Point{Tag: int32(i), Value: v, Time: at, Quality: q}
						}
						rec := enc.Begin(nil, record.Data, id, types, at, len(pts))
						for i := range pts {
							rec = enc.Add(rec, &pts[i])
						}
						v3 += int64(len(rec))
						v2 += int64(len(record.AppendV2(nil, record.Data, "press-01", dt, at, pts)))
						batch = append(batch, rec)
						if len(batch) == 100 {
							if _, _, err := buf.Append(batch...); err != nil {
								b.Fatal(err)
							}
							batch = batch[:0]
						}
					}
					if err := buf.Close(); err != nil {
						b.Fatal(err)
					}
					// The pages the records use; the file itself may be up
					// to 4 MiB longer (bbolt grows it in steps while far
					// from max_bytes).
					db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
					if err != nil {
						b.Fatal(err)
					}
					db.View(func(tx *bolt.Tx) error { fileBytes = tx.Size(); return nil })
					db.Close()
				}
				n := float64(tags * scans)
				b.ReportMetric(float64(v3)/n, "record-B/sample")
				b.ReportMetric(float64(fileBytes)/n, "file-B/sample")
				b.ReportMetric(float64(v2)/n, "v2-record-B/sample")
			})
		}
	}
}
