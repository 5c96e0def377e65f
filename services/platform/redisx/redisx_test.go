package redisx

import (
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		url     string
		addrs   []string
		cluster bool
		master  string
		db      int
		pool    int
		wantErr bool
	}{
		{url: "redis://127.0.0.1:6379/2", addrs: []string{"127.0.0.1:6379"}, db: 2},
		{url: "redis://u:p@10.0.0.1:6380/0?pool_size=200", addrs: []string{"10.0.0.1:6380"}, pool: 200},
		{url: "redis+cluster://a:7000,b:7001,c:7002", addrs: []string{"a:7000", "b:7001", "c:7002"}, cluster: true},
		{url: "redis+sentinel://s1:26379,s2:26379/mymaster/3", addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster", db: 3},
		{url: "redis+sentinel://s1:26379", wantErr: true},
		{url: "redis://a:1,b:2", wantErr: true},
		{url: "memcached://a:1", wantErr: true},
		{url: "redis://no-port", wantErr: true},
	}
	for _, c := range cases {
		o, err := ParseURL(c.url)
		if c.wantErr {
			if err == nil {
				t.Errorf("%s: accepted", c.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if len(o.Addrs) != len(c.addrs) || o.IsClusterMode != c.cluster || o.MasterName != c.master || o.DB != c.db || o.PoolSize != c.pool {
			t.Errorf("%s: got addrs %v cluster %v master %q db %d pool %d", c.url, o.Addrs, o.IsClusterMode, o.MasterName, o.DB, o.PoolSize)
			continue
		}
		for i := range c.addrs {
			if o.Addrs[i] != c.addrs[i] {
				t.Errorf("%s: addrs %v, want %v", c.url, o.Addrs, c.addrs)
			}
		}
	}
}
