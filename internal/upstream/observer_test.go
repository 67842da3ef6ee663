package upstream

import "testing"

func TestObserverObserve(t *testing.T) {
	var got [][2]string
	o := Observer(func(endpoint, code string) { got = append(got, [2]string{endpoint, code}) })
	o.Observe("token", 200)
	o.Observe("token", 503)
	o.Observe("revoke", 0)
	want := [][2]string{{"token", "200"}, {"token", "503"}, {"revoke", CodeError}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %v, want %v", i, got[i], want[i])
		}
	}
	var nilObserver Observer
	nilObserver.Observe("token", 200) // must not panic
}
