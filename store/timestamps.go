package store

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// PostgreSQL's timestamptz holds values Go tools cannot all show: 'infinity', '-infinity',
// and years from 4713 BC to 294276 AD (encoding/json refuses years outside 0..9999). A row
// written by anyone with such a value (a poison row) must neither fail a read command nor
// take a claim batch down, so pools from Open read every timestamptz leniently:
//
//	'-infinity', and finite values before year 0   ->  NegInfinity
//	'infinity', and finite values after year 9999  ->  Infinity
//
// and write the two sentinels back as '-infinity' and 'infinity', so a guard that read one
// still matches its row. Finite values inside years 0..9999 are read and written unchanged.
var (
	// NegInfinity stands for '-infinity' (and timestamps before year 0).
	NegInfinity = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC)
	// Infinity stands for 'infinity' (and timestamps after year 9999).
	Infinity = time.Date(9999, time.December, 31, 23, 59, 59, 999999000, time.UTC)
)

// InfiniteTime names a sentinel time: "-infinity" for NegInfinity, "infinity" for Infinity,
// and ok false for any other time. Formatters use it to show what PostgreSQL holds.
func InfiniteTime(t time.Time) (name string, ok bool) {
	switch {
	case t.Equal(NegInfinity):
		return "-infinity", true
	case t.Equal(Infinity):
		return "infinity", true
	}
	return "", false
}

// lenientTime maps what PostgreSQL holds to a time Go tools can show.
func lenientTime(v pgtype.Timestamptz) time.Time {
	switch {
	case v.InfinityModifier == pgtype.NegativeInfinity:
		return NegInfinity
	case v.InfinityModifier == pgtype.Infinity:
		return Infinity
	case v.Time.Before(NegInfinity):
		return NegInfinity
	case v.Time.After(Infinity):
		return Infinity
	}
	return v.Time
}

// pgTime is the value written for t: the sentinels become PostgreSQL's infinities.
func pgTime(t time.Time) pgtype.Timestamptz {
	switch {
	case t.Equal(NegInfinity):
		return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	case t.Equal(Infinity):
		return pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// RegisterTypes makes a connection's type map read timestamptz leniently (see NegInfinity).
// Open does it for every connection of its pools; call it for a connection made otherwise.
func RegisterTypes(m *pgtype.Map) {
	elem := &pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &lenientTimestamptzCodec{}}
	m.RegisterType(elem)
	m.RegisterType(&pgtype.Type{Name: "_timestamptz", OID: pgtype.TimestamptzArrayOID, Codec: &pgtype.ArrayCodec{ElementType: elem}})
}

// lenientTimestamptzCodec is pgx's timestamptz codec, except that time.Time targets and values
// go through lenientTime and pgTime.
type lenientTimestamptzCodec struct{ pgtype.TimestamptzCodec }

func (c *lenientTimestamptzCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*time.Time); ok {
		if next := c.TimestamptzCodec.PlanScan(m, oid, format, &pgtype.Timestamptz{}); next != nil {
			return lenientScan{next: next}
		}
	}
	return c.TimestamptzCodec.PlanScan(m, oid, format, target)
}

func (c *lenientTimestamptzCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(time.Time); ok {
		if next := c.TimestamptzCodec.PlanEncode(m, oid, format, pgtype.Timestamptz{}); next != nil {
			return lenientEncode{next: next}
		}
	}
	return c.TimestamptzCodec.PlanEncode(m, oid, format, value)
}

type lenientScan struct{ next pgtype.ScanPlan }

func (p lenientScan) Scan(src []byte, dst any) error {
	var v pgtype.Timestamptz
	if err := p.next.Scan(src, &v); err != nil {
		return err
	}
	if !v.Valid {
		return fmt.Errorf("cannot scan NULL into %T", dst)
	}
	*dst.(*time.Time) = lenientTime(v)
	return nil
}

type lenientEncode struct{ next pgtype.EncodePlan }

func (p lenientEncode) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(pgTime(value.(time.Time)), buf)
}
