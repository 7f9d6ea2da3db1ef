package iristest

import "net/http"

// Asset is a simulated asset.
type Asset struct{ ID int64 }

// Event is a simulated timeline event.
type Event struct{ ID int64 }

func (s *Server) assetRoutes(mux *http.ServeMux)     {}
func (s *Server) eventRoutes(mux *http.ServeMux)     {}
func (s *Server) attributeRoutes(mux *http.ServeMux) {}
