// Package rawdb holds the key that opens a store.Store's connection to store/storetest, which
// stages rows no transition writes (a poison timestamp, a lease from the past). Go's internal
// rule keeps every package outside store/ from importing it, so nothing else can name the key
// and reach the database beside the store's own statements.
package rawdb

// Key is the argument of store.Store.Raw. Its blank field makes it a type no other package
// can spell as a literal.
type Key struct{ _ struct{} }
