package logins

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestUsable(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := Login{Session: "s", Bearer: "b", Credentials: "c", At: at}
	cases := []struct {
		name          string
		bearer, creds string
		now           time.Time
		want          bool
	}{
		{"same token and credentials, fresh", "b", "c", at.Add(time.Minute), true},
		{"the app token changed", "b2", "c", at.Add(time.Minute), false},
		{"the password changed", "b", "c2", at.Add(time.Minute), false},
		{"as old as the keep-alive interval", "b", "c", at.Add(10 * time.Minute), false},
		{"a clock before the login", "b", "c", at.Add(-time.Second), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var u Unpublished
			u.Put("uid", l)
			got, ok := u.Usable("uid", tc.bearer, tc.creds, tc.now, 10*time.Minute)
			if ok != tc.want || (ok && got != l) {
				t.Fatalf("Usable = %+v, %v; want %v", got, ok, tc.want)
			}
			if _, again := u.Usable("uid", "b", "c", at.Add(time.Minute), 10*time.Minute); again != tc.want {
				t.Fatalf("after Usable = %v, the login is kept = %v; an unusable one is forgotten", ok, again)
			}
		})
	}
	var u Unpublished
	u.Put("uid", l)
	u.Forget("uid")
	if _, ok := u.Usable("uid", "b", "c", at, time.Hour); ok {
		t.Fatal("a forgotten login is usable")
	}
	for i := range maxHeld + 10 {
		u.Put(uidOf(i), l)
	}
	if len(u.m) > maxHeld {
		t.Fatalf("%d logins kept, want at most %d", len(u.m), maxHeld)
	}
}

func uidOf(i int) types.UID { return types.UID(time.Duration(i).String()) }
