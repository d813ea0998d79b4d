"""The course's own code and a course-size data set, which other benches compare against or train on."""
