//! pwsnas
