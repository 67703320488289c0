package main

import "testing"

// TestLogCounterCountsRetriesAcrossWrites: the registry's log arrives in
// arbitrary chunks; only notification retries count, 429s among them.
func TestLogCounterCountsRetriesAcrossWrites(t *testing.T) {
	c := &logCounter{}
	lines := `time="x" level=info msg="response completed" http.request.method=HEAD
time="x" level=error msg="retryingsink: error writing event, retrying" error="httpSink{http://127.0.0.1:1/v1/webhooks/distribution}: response status 429 Too Many Requests unaccepted"
time="x" level=error msg="retryingsink: error writing event, retrying" error="Post \"http://127.0.0.1:34290\": dial tcp: connection refused"
time="x" level=info msg="response completed 429"
`
	for i := 0; i < len(lines); i += 7 {
		if _, err := c.Write([]byte(lines[i:min(i+7, len(lines))])); err != nil {
			t.Fatal(err)
		}
	}
	if retries, tooMany := c.counts(); retries != 2 || tooMany != 1 {
		t.Errorf("retries %d, 429s %d; want 2 and 1 (a port holding 429 is no 429)", retries, tooMany)
	}
	if got := c.retryLines(); len(got) != 2 {
		t.Errorf("kept %d retry lines, want 2: %q", len(got), got)
	}
}
