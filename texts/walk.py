"""Texts of choosing a building, walking its meters, sending and viewing."""
