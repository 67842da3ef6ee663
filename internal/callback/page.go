package callback

import (
	"html/template"
	"net/http"
)

// outcome is what the browser is told.
type outcome struct {
	status int
	title  string
	detail string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Detail}}</p><p>thingspace-operator</p></body></html>
`))

// writePage answers the browser. The request URL carries the code, so the page must not leak it
// onwards (no referrer, no caching, no scripts).
func writePage(w http.ResponseWriter, o outcome) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	w.WriteHeader(o.status)
	_ = pageTemplate.Execute(w, struct{ Title, Detail string }{o.title, o.detail})
}
