// Package explore is Podium's adversarial explorer: a test tier that drives the real
// RegisteredModel reconciler against an in-memory API server, through lagging caches, injected
// API errors, crashes and two managers at once, and checks after every write that no model ever
// has two Production versions. See docs/explorer.md.
package explore
