package bench

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestShapePacesBodies checks the link's delay and that a response body and a request body each
// flow at about the rate.
func TestShapePacesBodies(t *testing.T) {
	const size = 1 << 20
	shape := Shape{Delay: 50 * time.Millisecond, Rate: 10e6}
	srv := httptest.NewServer(shape.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			_, _ = io.Copy(io.Discard, r.Body)
			return
		}
		_, _ = w.Write(make([]byte, size))
	})))
	defer srv.Close()
	want := shape.Delay + time.Duration(float64(size-burst)/shape.Rate*float64(time.Second))

	start := time.Now()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := time.Since(start); n != size || got < want || got > 3*want {
		t.Errorf("GET of %d bytes took %s, want about %s", n, got, want)
	}

	start = time.Now()
	req, _ := http.NewRequest(http.MethodPut, srv.URL, bytes.NewReader(make([]byte, size)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := time.Since(start); got < want || got > 3*want {
		t.Errorf("PUT of %d bytes took %s, want about %s", size, got, want)
	}
}

// TestLinkTime checks the bound: 3 blobs of 10 MB at 10 MB/s on 2 streams is 1.5 s when bytes
// can be split between streams, 2 s when each blob takes one stream; 2 waves of 10 ms.
func TestLinkTime(t *testing.T) {
	ideal, schedule := LinkTime(Shape{Delay: 10 * time.Millisecond, Rate: 10e6}, []int64{10e6, 10e6, 10e6}, 2, 0)
	if ideal < 1.519 || ideal > 1.521 || schedule < 2.019 || schedule > 2.021 {
		t.Errorf("LinkTime = %.3f, %.3f; want 1.520, 2.020", ideal, schedule)
	}
}
