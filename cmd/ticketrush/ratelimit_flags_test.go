package main

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8,::ffff:198.51.100.1,10.1.2.3/16,")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("198.51.100.1/32"),
		netip.MustParsePrefix("10.1.0.0/16"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := parsePrefixes(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	if _, err := parsePrefixes("10.0.0.0/8, proxy.example"); err == nil {
		t.Error("a host name was accepted")
	}
}
