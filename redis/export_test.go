package redis

import goredis "github.com/redis/go-redis/v9"

// AddHook lets a test watch the commands a store sends.
func (s *Store) AddHook(h goredis.Hook) { s.rdb.AddHook(h) }

// ReleaseChunk is the most expired holds one script call releases.
const ReleaseChunk = releaseChunk

// Prefix returns the store's key prefix.
func (s *Store) Prefix() string { return s.prefix }
