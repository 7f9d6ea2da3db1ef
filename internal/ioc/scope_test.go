package ioc

import "testing"

func TestScope(t *testing.T) {
	server := Scope{ExcludeLabels: []string{"velohunt-exclude"}, IncludeLabels: []string{"fleet"}}
	kind := Scope{IncludeLabels: []string{"win", "win"}, ExcludeLabels: []string{"dc"}}
	got := server.Narrow(kind)
	if enc := got.Encode(); enc != `{"include_labels":["win"],"exclude_labels":["dc","velohunt-exclude"]}` {
		t.Fatalf("narrowed scope %s", enc)
	}
	if s := got.String(); s != "only clients labelled win; never clients labelled dc or velohunt-exclude" {
		t.Fatalf("String() = %q", s)
	}
	back, err := DecodeScope(got.Encode())
	if err != nil || back.Encode() != got.Encode() {
		t.Fatalf("decoded %+v err=%v", back, err)
	}
	// A kind without include labels keeps the server's; an OS replaces.
	if s := server.Narrow(Scope{OS: "windows"}).String(); s != "only clients labelled fleet; never clients labelled velohunt-exclude; only windows clients" {
		t.Fatalf("String() = %q", s)
	}
	if (Scope{}).Encode() != "" || !(Scope{}).Narrow(Scope{}).Empty() {
		t.Fatal("an empty scope encodes as every client")
	}
	if _, err := DecodeScope("{"); err == nil {
		t.Fatal("a damaged scope was read")
	}
}
