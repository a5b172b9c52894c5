// Nothing: the cost of a process is all that is measured (see StartFloor.csproj).
return 0;
