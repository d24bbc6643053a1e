"""Tests of sahay.store."""
