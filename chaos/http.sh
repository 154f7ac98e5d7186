#!/usr/bin/env bash
# Hostile HTTP (the attacks of the HTTP issue: slow and oversized requests, floods of
# connections, bad envelopes) against `serve-http` and a daemon's `--http`.
# PENDING: written by the lead once the HTTP transport moves to hyper/axum (issue
# 15), so the scenario attacks the transport that ships.
# Usage: chaos/http.sh [--smoke]
echo "chaos http: pending: hostile HTTP is written after the HTTP transport issue (15) lands"
